// The only place that knows which LibTorch it is built against (Debian's 1.13 CPU build, or a
// CUDA 2.x build from a PyTorch wheel). Everything else calls these helpers.
#pragma once
#include <torch/torch.h>
#include <torch/version.h>

#include <string>

#define HISTOTRAIN_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace histotrain::compat {

inline std::string torch_version() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

inline bool cuda_available() { return torch::cuda::is_available(); }

// Seeds the CPU generator and, when present, every CUDA generator.
inline void manual_seed(uint64_t seed) {
  torch::manual_seed(seed);
  if (cuda_available()) torch::cuda::manual_seed_all(seed);
}

// The default CPU generator's state as a uint8 tensor, and back (for checkpoints).
inline torch::Tensor cpu_rng_state() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}
inline void set_cpu_rng_state(const torch::Tensor& state) {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

}  // namespace histotrain::compat
