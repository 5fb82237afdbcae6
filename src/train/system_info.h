// What a bug report or a benchmark figure needs to say about where it ran: histotrain's build
// (LibTorch version, CUDA, cuDNN, NCCL, the collective backends, the allocator) and the machine
// (CPU model, usable cores, speed-deciding instruction sets, GPUs). `histotrain info` prints it;
// `--version` gives its first line; summaries and study reports keep it.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace histotrain {

inline constexpr const char* kHistotrainVersion = "0.1.0";

nlohmann::json system_info();

// "histotrain 0.1.0, LibTorch 1.13.0 (CPU, AVX2 kernels), backends gloo, jemalloc 5.3.0; AMD EPYC,
// 2 cores, AVX2": the version line.
std::string system_summary_line(const nlohmann::json& info);

// The whole report as lines for a person.
std::string system_info_text(const nlohmann::json& info);

// One value from LibTorch's build configuration (at::show_config()), e.g. "CPU capability usage",
// "CuDNN", "CUDA Runtime"; "" when the line is absent. Exposed for tests.
std::string show_config_value(const std::string& config, const std::string& key);

}  // namespace histotrain
