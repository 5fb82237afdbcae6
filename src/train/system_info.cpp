#include "train/system_info.h"

#include <ATen/Version.h>

#include <sstream>

#include "core/compat.h"
#include "distributed/communicator.h"
#include "util/allocator.h"
#include "util/machine.h"

namespace histotrain {

namespace {

std::vector<std::string> words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// The BLAS LibTorch was built for (BLAS_INFO: "generic" for Debian's, which then takes whichever
// libblas.so.3 the system's alternatives point to) and the library actually loaded.
nlohmann::json blas_json(const std::string& config) {
  std::string built_for = show_config_value(config, "BLAS_INFO=");
  built_for = built_for.substr(0, built_for.find(','));
  const std::string loaded = loaded_blas_library();
  return {{"built_for", built_for}, {"loaded", loaded.empty() ? nlohmann::json(nullptr) : nlohmann::json(loaded)}};
}

// LibTorch's own build: its kernels' instruction set, oneDNN, and on CUDA builds the versions it
// was compiled with.
nlohmann::json libtorch_json() {
  const std::string config = at::show_config();
  std::string onednn = show_config_value(config, "Intel(R) oneDNN");
  if (onednn.empty()) onednn = show_config_value(config, "Intel(R) MKL-DNN");
  nlohmann::json j = {{"version", compat::torch_version()},
                      {"cuda", compat::built_with_cuda()},
                      {"cpu_kernels", show_config_value(config, "CPU capability usage")},
                      {"onednn", onednn.substr(0, onednn.find(' '))},
                      {"blas", blas_json(config)}};
  if (compat::built_with_cuda()) {
    // The runtime's lines appear once CUDA is initialised (never without a GPU); the versions
    // LibTorch was built for are always among its build settings.
    const auto value_or_setting = [&](const char* line, const char* setting) {
      std::string value = show_config_value(config, line);
      if (value.empty()) value = show_config_value(config, setting);
      return value.substr(0, value.find(','));
    };
    j["cuda_runtime"] = value_or_setting("CUDA Runtime", "CUDA_VERSION=");
    j["cudnn"] = value_or_setting("CuDNN", "CUDNN_VERSION=");
    j["nccl"] = Communicator::nccl_version();
  }
  return j;
}

nlohmann::json cpu_json() {
  const CpuInfo cpu = cpu_info();
  return {{"model", cpu.model}, {"logical_cores", cpu.logical_cores}, {"usable_cores", cpu.usable_cores}, {"isa", cpu.isa}};
}

nlohmann::json gpus_json() {
  nlohmann::json list = nlohmann::json::array();
  for (const compat::GpuInfo& gpu : compat::gpus())
    list.push_back({{"name", gpu.name}, {"memory_gib", gpu.memory_bytes / double(1 << 30)}, {"capability", gpu.capability}});
  return list;
}

std::string join(const nlohmann::json& list, const char* separator) {
  std::string text;
  for (const auto& item : list) text += (text.empty() ? "" : separator) + item.get<std::string>();
  return text;
}

std::string cpu_line(const nlohmann::json& cpu) {
  CpuInfo c;
  c.model = cpu.at("model");
  c.logical_cores = cpu.at("logical_cores");
  c.usable_cores = cpu.at("usable_cores");
  c.isa = cpu.at("isa").get<std::vector<std::string>>();
  return describe(c);
}

std::string blas_text(const nlohmann::json& torch) {
  if (!torch.contains("blas")) return "unknown";
  const nlohmann::json& blas = torch.at("blas");
  const std::string loaded = blas.at("loaded").is_string() ? blas.at("loaded").get<std::string>() : "";
  return "built for " + blas.at("built_for").get<std::string>() + (loaded.empty() ? "" : ", loaded " + loaded);
}

}  // namespace

std::string show_config_value(const std::string& config, const std::string& key) {
  std::istringstream lines(config);
  for (std::string line; std::getline(lines, line);) {
    const size_t at = line.find(key);
    if (at == std::string::npos) continue;
    std::string rest = line.substr(at + key.size());
    const size_t start = rest.find_first_not_of(": ");
    return start == std::string::npos ? "" : rest.substr(start);
  }
  return "";
}

nlohmann::json system_info() {
  return {{"histotrain", kHistotrainVersion},
          {"libtorch", libtorch_json()},
          {"backends", words(Communicator::available_backends() == "none" ? "" : Communicator::available_backends())},
          {"allocator", allocator_name()},
          {"cpu", cpu_json()},
          {"gpus", gpus_json()}};
}

std::string system_summary_line(const nlohmann::json& info) {
  const nlohmann::json& torch = info.at("libtorch");
  std::string build = torch.at("cuda").get<bool>() ? "CUDA " + torch.value("cuda_runtime", std::string("?")) : "CPU";
  const std::string kernels = torch.at("cpu_kernels");
  if (!kernels.empty()) build += ", " + kernels + " kernels";
  const std::string backends = info.at("backends").empty() ? "none" : join(info.at("backends"), " ");
  std::string line = std::string("histotrain ") + info.at("histotrain").get<std::string>() + ", LibTorch " +
                     torch.at("version").get<std::string>() + " (" + build + "), backends " + backends + ", " +
                     info.at("allocator").get<std::string>() + "; " + cpu_line(info.at("cpu"));
  for (const auto& gpu : info.at("gpus")) line += "; " + gpu.at("name").get<std::string>();
  return line;
}

std::string system_info_text(const nlohmann::json& info) {
  const nlohmann::json& torch = info.at("libtorch");
  const nlohmann::json& cpu = info.at("cpu");
  std::ostringstream out;
  out << "histotrain  " << info.at("histotrain").get<std::string>() << "\n"
      << "LibTorch    " << torch.at("version").get<std::string>() << (torch.at("cuda").get<bool>() ? ", CUDA" : ", CPU only")
      << "; CPU kernels " << torch.at("cpu_kernels").get<std::string>() << ", oneDNN "
      << torch.at("onednn").get<std::string>() << "\n"
      << "BLAS        " << blas_text(torch) << "\n";
  if (torch.at("cuda").get<bool>())
    out << "CUDA        runtime " << torch.value("cuda_runtime", "") << ", cuDNN " << torch.value("cudnn", "")
        << ", NCCL " << torch.value("nccl", "") << "\n";
  out << "backends    " << (info.at("backends").empty() ? "none (no data parallelism)" : join(info.at("backends"), ", "))
      << "\n"
      << "allocator   " << info.at("allocator").get<std::string>() << "\n"
      << "CPU         " << cpu.at("model").get<std::string>() << "\n"
      << "cores       " << cpu.at("usable_cores").get<int>() << " usable of " << cpu.at("logical_cores").get<int>()
      << " logical\n"
      << "ISA         " << (cpu.at("isa").empty() ? "(none of AVX2, AVX-512, AMX)" : join(cpu.at("isa"), " ")) << "\n";
  if (info.at("gpus").empty()) out << "GPUs        none\n";
  for (const auto& gpu : info.at("gpus")) {
    char memory[32];
    std::snprintf(memory, sizeof memory, "%.0f GiB", gpu.at("memory_gib").get<double>());
    out << "GPU         " << gpu.at("name").get<std::string>() << ", " << memory << ", compute capability "
        << gpu.at("capability").get<std::string>() << "\n";
  }
  return out.str();
}

}  // namespace histotrain
