#include "core/runtime.h"

#include <cstdlib>
#include <thread>

#include "core/compat.h"
#include "util/errors.h"
#include "util/machine.h"

namespace histotrain {

torch::Device parse_device(const std::string& name) {
  if (name != "cpu" && name != "cuda" && name.rfind("cuda:", 0) != 0)
    throw UsageError("--device must be cpu, cuda or cuda:N, not '" + name + "'");
  if (name.rfind("cuda", 0) == 0 && !compat::cuda_available())
    throw Error("--device " + name + ": CUDA is not available (this histotrain is built against a CPU-only LibTorch, "
                "or no GPU is visible)");
  const torch::Device device(name);
  // Image sizes are fixed within a run, so cuDNN's one-time search for the fastest kernels pays.
  if (device.is_cuda()) at::globalContext().setBenchmarkCuDNN(true);
  return device;
}

void set_threads(int threads, int ranks_on_node) {
  check_thread_count(threads, "--threads");
  if (threads <= 0) {
    const char* omp = std::getenv("OMP_NUM_THREADS");
    threads = omp ? std::atoi(omp) : 0;
    if (threads > max_threads_per_process()) threads = 0;  // an environment's value too large: all cores instead
  }
  if (threads <= 0)
    threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / std::max(1, ranks_on_node));
  at::set_num_threads(threads);
}

void use_deterministic_algorithms() {
  // cuBLAS reads this when its first handle is made, after this point; a user's setting wins.
  setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", /*overwrite=*/0);
  at::globalContext().setDeterministicAlgorithms(true, /*warn_only=*/false);
  at::globalContext().setBenchmarkCuDNN(false);
  at::globalContext().setDeterministicCuDNN(true);
}

}  // namespace histotrain
