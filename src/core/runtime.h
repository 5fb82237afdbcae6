// Process-wide execution settings shared by train, eval and predict.
#pragma once
#include <torch/torch.h>

#include <string>

namespace histotrain {

// "cpu", "cuda" or "cuda:N"; throws Error when CUDA is asked for but not available. For CUDA it
// also turns on cuDNN's benchmark mode.
torch::Device parse_device(const std::string& name);

// Sets LibTorch's intra-op threads. 0: $OMP_NUM_THREADS when set (torchrun and `histotrain
// launch` set it), else this node's cores shared among `ranks_on_node` processes. LibTorch would
// otherwise start with 1 here.
void set_threads(int threads, int ranks_on_node = 1);

// --deterministic: LibTorch refuses kernels that are not run-to-run deterministic; on CUDA cuDNN
// stops autotuning and picks deterministic algorithms, and cuBLAS gets a fixed workspace.
void use_deterministic_algorithms();

}  // namespace histotrain
