// Child processes start from their words, never through a shell.
#include <gtest/gtest.h>

#include <csignal>

#include "test_util.h"
#include "util/errors.h"
#include "util/process.h"

namespace histotrain {
namespace {

using testing::read_text;
using testing::ScratchDir;

TEST(Process, EveryArgumentStaysOneWordAndNoShellRuns) {
  ScratchDir dir;
  const std::string hostile = "a; touch " + (dir / "PWNED").string() + " $(touch " + (dir / "PWNED2").string() + ") 'b";
  EXPECT_EQ(run_process({"printf", "%s|", hostile, "two words"}, dir / "log"), 0);
  EXPECT_EQ(read_text(dir / "log"), hostile + "|two words|");
  EXPECT_FALSE(std::filesystem::exists(dir / "PWNED"));
  EXPECT_FALSE(std::filesystem::exists(dir / "PWNED2"));
}

TEST(Process, OutputsWorkingFolderAndExitCodes) {
  ScratchDir dir;
  std::filesystem::create_directories(dir / "inside");
  // stdout and stderr apart, in a working folder of its own.
  const pid_t pid = start_process({"sh", "-c", "pwd; echo err >&2; exit 3"}, {dir / "out", dir / "err", dir / "inside"});
  EXPECT_EQ(wait_process(pid), 3);
  EXPECT_EQ(read_text(dir / "out"), std::filesystem::canonical(dir / "inside").string() + "\n");
  EXPECT_EQ(read_text(dir / "err"), "err\n");
  // Both in one log.
  EXPECT_EQ(run_process({"sh", "-c", "echo out; echo err >&2"}, dir / "log"), 0);
  EXPECT_EQ(read_text(dir / "log"), "out\nerr\n");
  // A signal is 128 + its number, as a shell reports it.
  EXPECT_EQ(run_process({"sh", "-c", "kill -TERM $$"}, dir / "log"), 128 + SIGTERM);
  // A program that is not there is an error, not a silent exit code.
  EXPECT_THROW(run_process({"histotrain-no-such-program"}, dir / "log"), Error);
}

}  // namespace
}  // namespace histotrain
