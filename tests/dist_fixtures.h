// What the multi-process tests share: a small training command, `launch -n 2`, a rank of a job
// started by hand as srun or torchrun would, and bounds on how long a failure may take.
#pragma once
#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "cli_harness.h"

namespace histotrain::testing {

using Args = std::vector<std::string>;

// Bounds on how long a failure takes come from the timeouts the tests set, 5x over for a slow or
// busy machine (speed belongs in benchmarks).
inline constexpr int kLaunchGraceSeconds = 10;  // launch's default --grace

inline Args train_args(const std::string& data, const std::filesystem::path& out, int epochs) {
  return {"train", "--data", data, "--groups", data + "/groups.csv", "--image-size", "48", "--batch-size", "16",
          "--epochs", std::to_string(epochs), "--quiet", "--out", out.string()};
}

inline Args operator+(Args a, const Args& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

inline const Args kLaunch2 = {"launch", "-n", "2", "--threads-per-rank", "1", "--"};

// A rank of a job started by hand, as srun or torchrun would: RANK, WORLD_SIZE, MASTER_*.
inline Invocation rank_of(int rank, const std::string& port, const Args& args, const std::string& address = "127.0.0.1") {
  Invocation call;
  call.args = args;
  call.env = {{"RANK", std::to_string(rank)}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", address}, {"MASTER_PORT", port}};
  return call;
}

// How many of `pids` are still running.
inline int count_alive(const std::vector<pid_t>& pids) {
  int n = 0;
  for (const pid_t p : pids) n += alive(p) ? 1 : 0;
  return n;
}

}  // namespace histotrain::testing
