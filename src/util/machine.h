// What this machine's CPU is, as far as speed goes: its model, the cores this process may use and
// the instruction sets LibTorch's kernels choose between. For `histotrain info`, study reports
// and the cache of `--amp auto` decisions (a decision holds for one kind of machine only).
#pragma once
#include <string>
#include <vector>

namespace histotrain {

struct CpuInfo {
  std::string model = "unknown CPU";  // /proc/cpuinfo's "model name"
  int logical_cores = 0;              // online logical CPUs
  int usable_cores = 0;               // those this process may run on (its affinity mask: Slurm, taskset)
  // The speed-deciding instruction sets present, in a fixed order: avx2, avx512f, avx512_bf16,
  // avx512_fp16, amx_bf16, amx_tile, ...
  std::vector<std::string> isa;
};

// Read once per call from /proc/cpuinfo and the affinity mask; never throws.
CpuInfo cpu_info();

// The flags that CpuInfo::isa reports, from a cpuinfo "flags" line (exposed for tests).
std::vector<std::string> speed_isa_from_flags(const std::string& flags_line);

// "AMD EPYC, 2 cores, AVX2": the one line figures are labelled with.
std::string describe(const CpuInfo& cpu);

// The most threads a flag may ask for: 8 per logical core (oversubscription beyond that only
// costs memory and time; --threads 100000 would start 100,000 threads before anything else).
int max_threads_per_process();

// Throws UsageError when `count` (the value of `flag`, 0 meaning "all cores") is negative or over
// max_threads_per_process().
void check_thread_count(int count, const std::string& flag);

// The BLAS library this process loaded dynamically (resolved through Debian's alternatives, e.g.
// ".../openblas-openmp/libblas.so.3"), or "" when none was (a PyTorch wheel links MKL statically).
// Debian's reference BLAS makes matrix products an order of magnitude slower than OpenBLAS
// (docs/performance.md): run.sh installs OpenBLAS, and `info` and summaries say which one ran.
std::string loaded_blas_library();

}  // namespace histotrain
