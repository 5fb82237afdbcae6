// What moving activations between pipeline stages costs: measured once at the start, so that
// the step estimate (schedule_estimate.h) counts transfers and the report can say how much of a
// stage's waiting they are.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "distributed/communicator.h"

namespace histotrain {

// One-way seconds to move a float32 tensor of each size in `elements` from one stage's rank to
// the next's. Every pair of ranks that hand activations on ((s, s+1), and (K-1, 0) when
// micro-batches go round the ranks again) sends each size back and forth five times after a
// warm-up; a pair's figure is its fastest round trip halved, and the result the mean over the
// pairs. A collective: every rank calls it with the same sizes and gets the same figures.
std::vector<double> measure_transfers(Communicator& comm, const std::vector<int64_t>& elements,
                                      const torch::Device& device);

}  // namespace histotrain
