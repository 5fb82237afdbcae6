#include "core/runtime.h"

#include <cstdlib>
#include <thread>

#include "core/compat.h"
#include "util/errors.h"
#include "util/machine.h"

namespace histotrain {

std::optional<DeviceName> DeviceName::parse(std::string_view text) {
  if (text == "cpu") return DeviceName{};
  if (text == "cuda") return DeviceName{true, -1};
  constexpr std::string_view prefix = "cuda:";
  if (text.substr(0, prefix.size()) != prefix) return std::nullopt;
  const std::string_view digits = text.substr(prefix.size());
  if (digits.empty() || digits.size() > 4 || digits.find_first_not_of("0123456789") != std::string_view::npos)
    return std::nullopt;
  return DeviceName{true, std::stoi(std::string(digits))};
}

std::string DeviceName::text() const {
  if (!cuda) return "cpu";
  return index < 0 ? "cuda" : "cuda:" + std::to_string(index);
}

std::optional<DeviceList> DeviceList::parse(std::string_view text) {
  DeviceList list;
  if (text.empty()) return list;
  for (size_t start = 0;;) {
    const size_t comma = text.find(',', start);
    const auto name = DeviceName::parse(text.substr(start, comma == std::string_view::npos ? comma : comma - start));
    if (!name || list.names.size() >= 64) return std::nullopt;
    list.names.push_back(*name);
    if (comma == std::string_view::npos) return list;
    start = comma + 1;
  }
}

std::string DeviceList::text() const {
  std::string text;
  for (const DeviceName& name : names) text += (text.empty() ? "" : ",") + name.text();
  return text;
}

torch::Device open_device(const DeviceName& name) {
  if (!name.cuda) return torch::kCPU;
  if (!compat::cuda_available())
    throw Error("--device " + name.text() + ": CUDA is not available (this histotrain is built against a CPU-only "
                "LibTorch, or no GPU is visible)");
  // Image sizes are fixed within a run, so cuDNN's one-time search for the fastest kernels pays.
  at::globalContext().setBenchmarkCuDNN(true);
  return name.index < 0 ? torch::Device(torch::kCUDA) : torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(name.index));
}

torch::Device parse_device(const std::string& name) {
  const auto parsed = DeviceName::parse(name);
  if (!parsed) throw UsageError("--device must be cpu, cuda or cuda:N, not '" + name + "'");
  return open_device(*parsed);
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
