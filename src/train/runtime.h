// Process-wide execution settings shared by train, eval and predict.
#pragma once
#include <torch/torch.h>

#include <string>

namespace histotrain {

// "cpu", "cuda" or "cuda:N"; throws Error when CUDA is asked for but not available. For CUDA it
// also turns on cuDNN's benchmark mode.
torch::Device parse_device(const std::string& name);

// Sets LibTorch's intra-op threads (0: all cores). LibTorch would otherwise start with 1 here.
void set_threads(int threads);

}  // namespace histotrain
