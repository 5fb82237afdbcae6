#include "pipeline/transfer_cost.h"
#include "util/clock.h"

#include <algorithm>
#include <chrono>
#include <limits>

namespace histotrain {

namespace {

constexpr int kRoundTrips = 5;

// The fastest of kRoundTrips round trips of `message` between `from` (which times them) and `to`,
// halved; 0 on `to`.
double one_way_seconds(Communicator& comm, torch::Tensor& message, int from, int to) {
  double fastest = std::numeric_limits<double>::infinity();
  for (int trip = 0; trip <= kRoundTrips; ++trip) {  // trip 0 warms the connection up
    const auto start = std::chrono::steady_clock::now();
    if (comm.rank() == from) {
      comm.wait(comm.send_async(message, to, 2 * trip), "transfer measurement");
      comm.receive(message, to, 2 * trip + 1);
      if (message.is_cuda()) torch::cuda::synchronize();
      if (trip > 0)
        fastest = std::min(fastest, seconds_since(start));
    } else {
      comm.receive(message, from, 2 * trip);
      comm.wait(comm.send_async(message, from, 2 * trip + 1), "transfer measurement");
    }
  }
  return comm.rank() == from ? fastest / 2 : 0;
}

}  // namespace

std::vector<double> measure_transfers(Communicator& comm, const std::vector<int64_t>& elements,
                                      const torch::Device& device) {
  const int ranks = comm.world_size();
  const int pairs = ranks > 2 ? ranks : ranks - 1;  // with 2 ranks, (1, 0) is the same link as (0, 1)
  auto measured = torch::zeros({static_cast<int64_t>(elements.size())}, torch::kFloat64);
  for (int p = 0; p < pairs; ++p) {  // one pair at a time, so each has the link to itself
    const int from = p, to = (p + 1) % ranks;
    if (comm.rank() != from && comm.rank() != to) continue;
    for (size_t i = 0; i < elements.size(); ++i) {
      torch::Tensor message = torch::ones({elements[i]}, torch::TensorOptions().device(device));
      measured[static_cast<int64_t>(i)] += one_way_seconds(comm, message, from, to);
    }
  }
  comm.all_reduce_sum(measured);
  std::vector<double> seconds(elements.size());
  for (size_t i = 0; i < elements.size(); ++i) seconds[i] = measured[static_cast<int64_t>(i)].item<double>() / pairs;
  return seconds;
}

}  // namespace histotrain
