// Progress lines when output goes to a pipe or a log file: a few lines, never one per update.
#include <gtest/gtest.h>

#include <algorithm>
#include <unistd.h>

#include "util/progress.h"

namespace histotrain {
namespace {

TEST(Progress, APipeGetsAtMostALineEveryFewSecondsNotOnePerUpdate) {
  if (::isatty(STDERR_FILENO)) GTEST_SKIP() << "stderr is a terminal here: the bar redraws in place";
  ::testing::internal::CaptureStderr();
  {
    Progress bar("epoch 1/1", 100, "img");
    for (int done = 1; done <= 100; ++done) bar.update(done, "loss 1.0");  // every 10% step crossed
    bar.finish();
  }
  const std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << "only the final line within 5 s:\n" << out;
  EXPECT_NE(out.find("100/100 img"), std::string::npos) << out;
}

}  // namespace
}  // namespace histotrain
