#include "util/machine.h"

#include <thread>

#include <link.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "util/errors.h"

namespace histotrain {

namespace {

// Ordered from the oldest to the newest: the last one present says most about the fast paths.
const char* const kSpeedIsa[] = {"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                                 "amx_tile", "amx_bf16", "amx_int8", "amx_fp16"};

std::string value_after_colon(const std::string& line) {
  const size_t colon = line.find(':');
  if (colon == std::string::npos) return "";
  const size_t start = line.find_first_not_of(" \t", colon + 1);
  return start == std::string::npos ? "" : line.substr(start);
}

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return s;
}

}  // namespace

std::vector<std::string> speed_isa_from_flags(const std::string& flags_line) {
  std::istringstream words(flags_line);
  std::vector<std::string> present;
  for (std::string word; words >> word;) present.push_back(word);
  std::vector<std::string> isa;
  for (const char* name : kSpeedIsa)
    if (std::find(present.begin(), present.end(), name) != present.end()) isa.emplace_back(name);
  return isa;
}

CpuInfo cpu_info() {
  CpuInfo cpu;
  std::ifstream in("/proc/cpuinfo");
  std::string line, flags;
  // The first processor's entry says all we need; stop there (a 256-core node lists 256).
  while (std::getline(in, line) && (cpu.model == "unknown CPU" || flags.empty())) {
    if (line.rfind("model name", 0) == 0) cpu.model = value_after_colon(line);
    if (line.rfind("flags", 0) == 0) flags = value_after_colon(line);
  }
  cpu.isa = speed_isa_from_flags(flags);
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  cpu.logical_cores = online > 0 ? static_cast<int>(online) : 1;
  cpu_set_t mask;
  cpu.usable_cores = sched_getaffinity(0, sizeof mask, &mask) == 0 ? CPU_COUNT(&mask) : cpu.logical_cores;
  return cpu;
}

std::string describe(const CpuInfo& cpu) {
  std::string line = cpu.model + ", " + std::to_string(cpu.usable_cores) + " cores";
  if (cpu.usable_cores != cpu.logical_cores) line += " of " + std::to_string(cpu.logical_cores);
  std::string isa;
  for (const std::string& name : cpu.isa)
    if (name != "fma") isa += (isa.empty() ? "" : " ") + upper(name);
  return line + (isa.empty() ? "" : ", " + isa);
}

int max_threads_per_process() {
  static const int most = 8 * std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  return most;
}

void check_thread_count(int count, const std::string& flag) {
  if (count < 0) throw UsageError(flag + " must be >= 0 (0: all cores)");
  if (count > max_threads_per_process())
    throw UsageError(flag + " " + std::to_string(count) + " is more than this machine can use (at most " +
                     std::to_string(max_threads_per_process()) + ", 8 per core; 0 uses all cores)");
}

std::string loaded_blas_library() {
  std::string found;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        const std::string path = info->dlpi_name ? info->dlpi_name : "";
        const std::string name = path.substr(path.rfind('/') + 1);
        if (name.rfind("libblas.so", 0) != 0 && name.rfind("libopenblas", 0) != 0 && name.rfind("libblis", 0) != 0 &&
            name.rfind("libmkl_rt", 0) != 0)
          return 0;
        std::error_code error;
        const std::filesystem::path resolved = std::filesystem::canonical(path, error);
        *static_cast<std::string*>(data) = error ? path : resolved.string();
        return 1;  // the first one: the one symbols resolve to
      },
      &found);
  return found;
}

}  // namespace histotrain
