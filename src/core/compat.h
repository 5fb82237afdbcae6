// The only place that knows which LibTorch it is built against (Debian's 1.13 CPU build, or a
// CUDA 2.x build from a PyTorch wheel). Everything else calls these helpers.
#pragma once
#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

#define HISTOTRAIN_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))
#ifdef HISTOTRAIN_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif
#if HISTOTRAIN_TORCH_AT_LEAST(2, 0)
#include <torch/csrc/distributed/c10d/Backend.hpp>
#else
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#endif

#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

namespace histotrain::compat {

// The class that Gloo's and NCCL's process groups derive from: ProcessGroup in 1.13, Backend
// from 2.0 on (ProcessGroup became a dispatcher over backends).
#if HISTOTRAIN_TORCH_AT_LEAST(2, 0)
using CollectiveBackend = c10d::Backend;
#else
using CollectiveBackend = c10d::ProcessGroup;
#endif

inline std::string torch_version() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

inline bool cuda_available() { return torch::cuda::is_available(); }

// Whether this LibTorch's TCPStore serves on a socket histotrain has bound itself
// (TCPStoreOptions::masterListenFd, in 2.x), so that it listens on one address only. 1.13's
// listens on every interface. Decided from the options type, so either compiles.
template <typename Options, typename = void>
struct TcpStoreTakesListeningSocket : std::false_type {};
template <typename Options>
struct TcpStoreTakesListeningSocket<Options, std::void_t<decltype(std::declval<Options&>().masterListenFd)>>
    : std::true_type {};

template <typename Options>
constexpr bool tcp_store_takes_listening_socket(const Options&) {
  return TcpStoreTakesListeningSocket<Options>::value;
}

// Hands a listening socket to the store (which then owns it); a no-op where it cannot take one.
template <typename Options>
void give_tcp_store_listening_socket([[maybe_unused]] Options& options, [[maybe_unused]] int fd) {
  if constexpr (TcpStoreTakesListeningSocket<Options>::value) options.masterListenFd = fd;
}

// Whether this build links a CUDA LibTorch (known without touching the driver).
inline bool built_with_cuda() {
#ifdef HISTOTRAIN_WITH_CUDA
  return true;
#else
  return false;
#endif
}

struct GpuInfo {
  std::string name;
  int64_t memory_bytes = 0;
  std::string capability;  // "9.0"
};

// The GPUs this process sees (none without a CUDA LibTorch or a driver).
inline std::vector<GpuInfo> gpus() {
  std::vector<GpuInfo> found;
#ifdef HISTOTRAIN_WITH_CUDA
  if (!cuda_available()) return found;
  for (int64_t d = 0; d < static_cast<int64_t>(torch::cuda::device_count()); ++d) {
    const auto* p = at::cuda::getDeviceProperties(static_cast<int>(d));
    found.push_back({p->name, static_cast<int64_t>(p->totalGlobalMem),
                     std::to_string(p->major) + "." + std::to_string(p->minor)});
  }
#endif
  return found;
}

// Seeds the CPU generator and, when present, every CUDA generator.
inline void manual_seed(uint64_t seed) {
  torch::manual_seed(seed);
  if (cuda_available()) torch::cuda::manual_seed_all(seed);
}

// Peak bytes the CUDA caching allocator handed out on `device` since the last reset; -1 without
// CUDA. This is what a GPU run's "peak memory" means (the process's RSS says nothing about it).
inline int64_t cuda_peak_allocated_bytes([[maybe_unused]] int device) {
#ifdef HISTOTRAIN_WITH_CUDA
  return c10::cuda::CUDACachingAllocator::getDeviceStats(device).allocated_bytes[0].peak;  // [0]: all pools
#else
  return -1;
#endif
}

// The key of a parameter's entry in Optimizer::state(): a string in 1.13, the TensorImpl
// pointer in later versions. Chosen from the map's key type, so either compiles.
template <typename StateMap>
typename StateMap::key_type optimizer_state_key(const StateMap&, const torch::Tensor& parameter) {
  using Key = typename StateMap::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream text;  // what 1.13's c10::guts::to_string(TensorImpl*) writes
    text << parameter.unsafeGetTensorImpl();
    return text.str();
  } else {
    return static_cast<Key>(parameter.unsafeGetTensorImpl());
  }
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

// Turns autocast on or off for one device type with the given low-precision dtype.
// LibTorch 1.13 has one setter per device (set_cpu_enabled, set_enabled for CUDA); 2.4 and later
// take the device type as an argument (the old setters are deprecated).
inline void set_autocast(c10::DeviceType device, bool enabled, c10::ScalarType dtype) {
#if HISTOTRAIN_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_dtype(device, dtype);
  at::autocast::set_autocast_enabled(device, enabled);
#else
  if (device == c10::DeviceType::CUDA) {
    at::autocast::set_autocast_gpu_dtype(dtype);
    at::autocast::set_enabled(enabled);
  } else {
    at::autocast::set_autocast_cpu_dtype(dtype);
    at::autocast::set_cpu_enabled(enabled);
  }
#endif
}

inline c10::ScalarType autocast_dtype(c10::DeviceType device) {
#if HISTOTRAIN_TORCH_AT_LEAST(2, 4)
  return at::autocast::get_autocast_dtype(device);
#else
  return device == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
}

inline bool autocast_enabled(c10::DeviceType device) {
#if HISTOTRAIN_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(device);
#else
  return device == c10::DeviceType::CUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

}  // namespace histotrain::compat
