// `histotrain launch`: N local ranks without Python or torchrun. Each rank is this executable,
// run with torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT, OMP_NUM_THREADS) on a free loopback port. Output comes back line by line with a
// "[rank k] " prefix. Ctrl-C / SIGTERM reach every rank; when one rank fails the others are
// stopped (SIGTERM, then SIGKILL after a grace period) and the launch fails with its exit code.
#pragma once
#include <string>
#include <vector>

namespace histotrain {

struct LaunchOptions {
  int ranks = 2;
  int threads_per_rank = 0;       // 0: this machine's cores divided among the ranks
  int port = 0;                   // 0: a free port
  double grace_seconds = 10;      // between SIGTERM and SIGKILL when stopping ranks
  std::vector<std::string> args;  // the histotrain command each rank runs, e.g. {"train", "--data", ...}
};

// Runs the ranks to the end; returns 0 when all succeeded, else the first failure's exit code
// (128 + signal for a rank killed by a signal).
int launch_local_ranks(const LaunchOptions& options);

// A TCP port on 127.0.0.1 that nothing listens on right now.
int free_loopback_port();

}  // namespace histotrain
