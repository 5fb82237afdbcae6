#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "util/allocator.h"

namespace histotrain {
namespace {

long minor_faults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

// Allocates, writes and frees buffers the way a training step does with its activations.
void one_step(const std::vector<size_t>& sizes) {
  std::vector<void*> buffers;
  for (size_t bytes : sizes) {
    void* p = std::malloc(bytes);
    ASSERT_NE(p, nullptr);
    std::memset(p, 1, bytes);
    buffers.push_back(p);
  }
  for (void* p : buffers) std::free(p);
}

TEST(Allocator, StepsAfterTheFirstReuseFreedMemoryWithoutPageFaults) {
#ifdef __SANITIZE_ADDRESS__
  GTEST_SKIP() << "AddressSanitizer's allocator holds freed memory in quarantine";
#endif
  keep_freed_memory();
  const std::vector<size_t> sizes = {8u << 20, 16u << 20, 24u << 20, 12u << 20, 30u << 20};  // 90 MiB, each under 32 MiB
  one_step(sizes);
  const long before = minor_faults();
  for (int step = 0; step < 4; ++step) one_step(sizes);
  const long pages = 4 * (90l << 20) / 4096;
  // Left to glibc's defaults, every later step faults again on a good part of its ~23,000 pages.
  EXPECT_LT(minor_faults() - before, pages / 100) << allocator_name() << ": freed memory went back to the kernel";
  EXPECT_FALSE(allocator_name().empty());
}

// The count the pipeline reports activations with: it follows what is held, not what is mapped.
TEST(Allocator, AllocatedBytesFollowWhatIsHeld) {
  const double before = static_cast<double>(allocated_bytes());
  void* p = std::malloc(40u << 20);
  ASSERT_NE(p, nullptr);
  std::memset(p, 1, 40u << 20);
  const double holding = static_cast<double>(allocated_bytes());
  std::free(p);
  const double after = static_cast<double>(allocated_bytes());
  EXPECT_NEAR(holding - before, 40 << 20, 1 << 20) << allocator_name();
  EXPECT_NEAR(after, before, 1 << 20) << "freed memory is no longer counted, even if the allocator keeps its pages";
}

}  // namespace
}  // namespace histotrain
