#include "pipeline/schedule_estimate.h"

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace histotrain {

namespace {

double chunk_sum(const StagePlan& plan, const std::vector<double>& per_unit, int chunk) {
  double sum = 0;
  for (int64_t u = plan.first(chunk); u < plan.end(chunk); ++u) sum += per_unit[static_cast<size_t>(u)];
  return sum;
}

}  // namespace

StepEstimate estimate_step(const StagePlan& plan, const UnitCosts& costs, int micro_batches,
                           PipelineSchedule schedule) {
  const int chunks = plan.chunks(), stages = plan.stages();
  std::vector<double> forward(chunks), backward(chunks), update(stages, 0), busy(stages, 0), receiving(stages, 0);
  const auto transfer_after = [&](int chunk) {  // a micro-batch's activations leaving the chunk, or their gradient coming back
    return costs.transfer.empty() ? 0.0 : costs.transfer[static_cast<size_t>(plan.end(chunk) - 1)];
  };
  for (int c = 0; c < chunks; ++c) {
    forward[c] = chunk_sum(plan, costs.forward, c);
    backward[c] = chunk_sum(plan, costs.backward, c);
    update[plan.stage_of_chunk(c)] += chunk_sum(plan, costs.update, c);
  }
  // finished[chunk][m]: when the forward (0) or backward (1) of micro-batch m through chunk ended; < 0: not yet.
  std::vector<std::vector<double>> finished[2];
  for (auto& f : finished) f.assign(chunks, std::vector<double>(micro_batches, -1));
  std::vector<std::vector<PipelineOp>> todo(stages);
  std::vector<size_t> next(stages, 0);
  std::vector<double> clock(stages, 0);
  for (int s = 0; s < stages; ++s) todo[s] = stage_ops(plan, s, micro_batches, schedule);
  // Each pass runs every stage's ops up to the first whose input is not there yet; a correct
  // schedule always lets some stage go on.
  for (bool progress = true; progress;) {
    progress = false;
    for (int s = 0; s < stages; ++s) {
      while (next[s] < todo[s].size()) {
        const PipelineOp& t = todo[s][next[s]];
        // Its input comes from another stage: the chunk before's activations, or the chunk after's
        // gradients, which cross the cut after chunk `cut`.
        const bool from_before = t.forward && t.chunk > 0, from_after = !t.forward && t.chunk + 1 < chunks;
        const int cut = from_before ? t.chunk - 1 : t.chunk;
        const double sent = from_before  ? finished[0][t.chunk - 1][t.micro_batch]
                            : from_after ? finished[1][t.chunk + 1][t.micro_batch]
                                         : 0;
        if (sent < 0 || (!t.forward && finished[0][t.chunk][t.micro_batch] < 0)) break;
        const double in_transit = from_before || from_after ? transfer_after(cut) : 0;
        receiving[s] += in_transit;
        const double cost = t.forward ? forward[t.chunk] : backward[t.chunk];
        clock[s] = std::max(clock[s], sent + in_transit) + cost;
        busy[s] += cost;
        finished[t.forward ? 0 : 1][t.chunk][t.micro_batch] = clock[s];
        ++next[s];
        progress = true;
      }
    }
  }
  for (int s = 0; s < stages; ++s)
    if (next[s] < todo[s].size()) throw std::logic_error("pipeline schedule " + schedule_name(schedule) + " deadlocks");
  StepEstimate estimate;
  for (int s = 0; s < stages; ++s) estimate.seconds = std::max(estimate.seconds, clock[s] + update[s]);
  for (int s = 0; s < stages; ++s)
    estimate.idle.push_back(estimate.seconds > 0 ? 1 - (busy[s] + update[s]) / estimate.seconds : 0);
  estimate.receiving = receiving;
  estimate.computing = busy;
  return estimate;
}

namespace {

// A cut moves away from the balanced one only for a shorter step by more than this share. With
// one micro-batch nothing overlaps and every cut takes as long; the balanced one still halves the
// memory and keeps the transfers small.
constexpr double kWorthMoving = 1e-3;

// Tries every cut from bounds[cut] on (the ones before are fixed); keeps the fastest in `best`.
void try_every_cut(StagePlan& plan, size_t cut, const UnitCosts& costs, int micro_batches,
                   PipelineSchedule schedule, StagePlan& best, double& best_seconds) {
  if (cut + 1 == plan.bounds.size()) {
    const double seconds = estimate_step(plan, costs, micro_batches, schedule).seconds;
    if (seconds < best_seconds * (1 - kWorthMoving)) {
      best_seconds = seconds;
      best = plan;
    }
    return;
  }
  const int64_t chunks_left = static_cast<int64_t>(plan.bounds.size()) - 1 - static_cast<int64_t>(cut);
  for (int64_t b = plan.bounds[cut - 1] + 1; b <= plan.bounds.back() - chunks_left; ++b) {
    plan.bounds[cut] = b;
    try_every_cut(plan, cut + 1, costs, micro_batches, schedule, best, best_seconds);
  }
}

}  // namespace

StagePlan fit_to_schedule(StagePlan plan, const UnitCosts& costs, int micro_batches, PipelineSchedule schedule) {
  // Every cut: ResNet-18 in 4 chunks has 84, the 18 units of ResNet-34 or -50 at most 24,310.
  StagePlan best = plan, scratch = plan;
  double best_seconds = estimate_step(plan, costs, micro_batches, schedule).seconds;
  try_every_cut(scratch, 1, costs, micro_batches, schedule, best, best_seconds);
  return best;
}

}  // namespace histotrain
