// What `histotrain info` and --version report, and the build's collective backends.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/compat.h"
#include "distributed/communicator.h"
#include "test_util.h"
#include "train/system_info.h"
#include "util/machine.h"

namespace histotrain {
namespace {

TEST(SystemInfo, SpeedInstructionSetsFromTheFlagsLine) {
  EXPECT_EQ(speed_isa_from_flags("fpu sse2 avx avx2 fma f16c"), (std::vector<std::string>{"avx2", "fma"}));
  EXPECT_EQ(speed_isa_from_flags("avx512_bf16 avx2 amx_tile avx512f avx512fp16 amx_bf16 fma"),
            (std::vector<std::string>{"avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"}));
  EXPECT_TRUE(speed_isa_from_flags("").empty());
}

TEST(SystemInfo, TheCpuLineNamesModelCoresAndInstructionSets) {
  CpuInfo cpu;
  cpu.model = "Intel(R) Xeon(R) Platinum";
  cpu.logical_cores = 8;
  cpu.usable_cores = 2;
  cpu.isa = {"avx2", "fma", "avx512f", "avx512_bf16"};
  EXPECT_EQ(describe(cpu), "Intel(R) Xeon(R) Platinum, 2 cores of 8, AVX2 AVX512F AVX512_BF16");
  const CpuInfo here = cpu_info();
  EXPECT_GE(here.usable_cores, 1);
  EXPECT_LE(here.usable_cores, here.logical_cores);
  EXPECT_NE(here.model, "");
}

TEST(SystemInfo, ValuesFromLibTorchsBuildConfiguration) {
  const std::string config =
      "PyTorch built with:\n  - GCC 12.2\n  - Intel(R) MKL-DNN v2.6.3 (Git Hash N/A)\n"
      "  - CPU capability usage: AVX512\n  - CUDA Runtime 12.8\n  - CuDNN 91.0.2\n"
      "  - Build settings: CUDNN_VERSION=9.1.0, USE_NCCL=1\n";
  EXPECT_EQ(show_config_value(config, "CPU capability usage"), "AVX512");
  EXPECT_EQ(show_config_value(config, "CUDA Runtime"), "12.8");
  EXPECT_EQ(show_config_value(config, "CuDNN"), "91.0.2");
  EXPECT_EQ(show_config_value(config, "Intel(R) oneDNN"), "");
  // This LibTorch's own configuration names the kernels it runs.
  EXPECT_NE(system_info().at("libtorch").at("cpu_kernels").get<std::string>(), "");
}

// Which BLAS ran decides how fast matrix products are (~20x between Debian's reference BLAS and
// OpenBLAS): the build it was made for, and the file loaded when it is a shared library.
TEST(SystemInfo, SaysWhichBlasWasLoaded) {
  const nlohmann::json blas = system_info().at("libtorch").at("blas");
  const std::string built_for = blas.at("built_for");
  EXPECT_FALSE(built_for.empty());
  EXPECT_EQ(built_for.find(' '), std::string::npos) << built_for;
  if (built_for == "generic") {  // Debian's LibTorch: libblas.so.3, whichever the alternatives chose
    ASSERT_TRUE(blas.at("loaded").is_string());
    EXPECT_TRUE(std::filesystem::exists(blas.at("loaded").get<std::string>()));
  }
  EXPECT_EQ(loaded_blas_library(), blas.at("loaded").is_string() ? blas.at("loaded").get<std::string>() : "");
}

// Not a skip: a CPU build without Gloo has no data parallelism and no pipeline across ranks, which
// is what a fresh machine without libgloo-dev once got while every test of them was skipped.
TEST(Build, CpuBuildsHaveGlooAndCudaBuildsNccl) {
  const std::string backends = Communicator::available_backends();
  if (compat::built_with_cuda())
    EXPECT_NE(backends.find("nccl"), std::string::npos) << backends;
  else
    EXPECT_NE(backends.find("gloo"), std::string::npos)
        << "this CPU build has no Gloo (backends: " << backends << "): install libgloo-dev and reconfigure";
}

}  // namespace
}  // namespace histotrain
