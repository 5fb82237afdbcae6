// Several ranks as threads of one test process, each with its own Gloo group over one in-memory
// store: how the tests exercise collectives without launching processes.
#pragma once
#include <gtest/gtest.h>
#include <torch/csrc/distributed/c10d/HashStore.hpp>

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "distributed/communicator.h"

namespace histotrain::testing {

// Whether this build starts Gloo groups. A build on a PyTorch wheel's LibTorch has no Gloo (the
// wheel ships no Gloo headers: cmake/gloo.cmake), so it has no collectives on CPUs and its tests
// of them skip; a CPU build without Gloo fails Build.CpuBuildsHaveGlooAndCudaBuildsNccl instead.
inline bool gloo_built() { return Communicator::available_backends().find("gloo") != std::string::npos; }


// Runs `body` on `ranks` threads, each a rank with its communicator; a rank's exception fails the
// test, naming the rank.
inline void run_ranks(int ranks, const std::function<void(Communicator&)>& body) {
  auto store = c10::make_intrusive<c10d::HashStore>();
  std::vector<std::string> errors(static_cast<size_t>(ranks));
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      try {
        Communicator comm(store, r, ranks, std::chrono::seconds(60));
        body(comm);
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(r)] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < ranks; ++r) EXPECT_EQ(errors[static_cast<size_t>(r)], "") << "rank " << r << " of " << ranks;
}

}  // namespace histotrain::testing

// The first line of a test that runs ranks.
#define HISTOTRAIN_SKIP_WITHOUT_GLOO() \
  if (!histotrain::testing::gloo_built()) GTEST_SKIP() << "this build has no Gloo: no collectives between ranks on CPUs"
