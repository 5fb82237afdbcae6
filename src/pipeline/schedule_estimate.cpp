#include "pipeline/schedule_estimate.h"

#include <algorithm>
#include <utility>

namespace histotrain {

namespace {

double chunk_sum(const StagePlan& plan, const std::vector<double>& per_unit, int chunk) {
  double sum = 0;
  for (int64_t u = plan.first(chunk); u < plan.end(chunk); ++u) sum += per_unit[static_cast<size_t>(u)];
  return sum;
}

// One stage's work in the order PipelineStage::step does it.
struct Task {
  int chunk;
  int micro_batch;
  bool forward;
};

std::vector<Task> tasks_of(const StagePlan& plan, int stage, int micro_batches) {
  std::vector<Task> tasks;
  const std::vector<int> chunks = plan.chunks_of(stage);
  for (int c : chunks)
    for (int m = 0; m < micro_batches; ++m) tasks.push_back({c, m, true});
  for (auto c = chunks.rbegin(); c != chunks.rend(); ++c)
    for (int m = micro_batches - 1; m >= 0; --m) tasks.push_back({*c, m, false});
  return tasks;
}

}  // namespace

StepEstimate estimate_step(const StagePlan& plan, const UnitCosts& costs, int micro_batches) {
  const int chunks = plan.chunks(), stages = plan.stages();
  std::vector<double> forward(chunks), backward(chunks), update(stages, 0), busy(stages, 0);
  for (int c = 0; c < chunks; ++c) {
    forward[c] = chunk_sum(plan, costs.forward, c);
    backward[c] = chunk_sum(plan, costs.backward, c);
    update[plan.stage_of_chunk(c)] += chunk_sum(plan, costs.update, c);
  }
  // finished[chunk][m]: when the forward (0) or backward (1) of micro-batch m through chunk ended; < 0: not yet.
  std::vector<std::vector<double>> finished[2];
  for (auto& f : finished) f.assign(chunks, std::vector<double>(micro_batches, -1));
  std::vector<std::vector<Task>> todo(stages);
  std::vector<size_t> next(stages, 0);
  std::vector<double> clock(stages, 0);
  for (int s = 0; s < stages; ++s) todo[s] = tasks_of(plan, s, micro_batches);
  // Each pass runs every stage's tasks up to the first whose input is not there yet; a correct
  // schedule always lets some stage go on.
  for (bool progress = true; progress;) {
    progress = false;
    for (int s = 0; s < stages; ++s) {
      while (next[s] < todo[s].size()) {
        const Task& t = todo[s][next[s]];
        double ready = 0;  // when its input is there: the chunk before's activations, or the chunk after's gradients
        if (t.forward && t.chunk > 0) ready = finished[0][t.chunk - 1][t.micro_batch];
        if (!t.forward && t.chunk + 1 < chunks) ready = finished[1][t.chunk + 1][t.micro_batch];
        if (ready < 0) break;
        const double cost = t.forward ? forward[t.chunk] : backward[t.chunk];
        clock[s] = std::max(clock[s], ready) + cost;
        busy[s] += cost;
        finished[t.forward ? 0 : 1][t.chunk][t.micro_batch] = clock[s];
        ++next[s];
        progress = true;
      }
    }
  }
  StepEstimate estimate;
  for (int s = 0; s < stages; ++s) estimate.seconds = std::max(estimate.seconds, clock[s] + update[s]);
  for (int s = 0; s < stages; ++s)
    estimate.idle.push_back(estimate.seconds > 0 ? 1 - (busy[s] + update[s]) / estimate.seconds : 0);
  return estimate;
}

namespace {

// A cut moves away from the balanced one only for a shorter step by more than this share. With
// one micro-batch nothing overlaps and every cut takes as long; the balanced one still halves the
// memory and keeps the transfers small.
constexpr double kWorthMoving = 1e-3;

// The number of ways to cut `units` units into `chunks` non-empty contiguous chunks.
double cut_count(int64_t units, int chunks) {
  double count = 1;
  for (int k = 1; k < chunks; ++k) count = count * static_cast<double>(units - k) / k;
  return count;
}

// Tries every cut from bounds[cut] on (the ones before are fixed); keeps the fastest in `best`.
void try_every_cut(StagePlan& plan, size_t cut, const UnitCosts& costs, int micro_batches, StagePlan& best,
                   double& best_seconds) {
  if (cut + 1 == plan.bounds.size()) {
    const double seconds = estimate_step(plan, costs, micro_batches).seconds;
    if (seconds < best_seconds * (1 - kWorthMoving)) {
      best_seconds = seconds;
      best = plan;
    }
    return;
  }
  const int64_t chunks_left = static_cast<int64_t>(plan.bounds.size()) - 1 - static_cast<int64_t>(cut);
  for (int64_t b = plan.bounds[cut - 1] + 1; b <= plan.bounds.back() - chunks_left; ++b) {
    plan.bounds[cut] = b;
    try_every_cut(plan, cut + 1, costs, micro_batches, best, best_seconds);
  }
}

// Moves one cut by one unit at a time, the best move first, while that shortens the step.
StagePlan descend(StagePlan plan, const UnitCosts& costs, int micro_batches) {
  double best = estimate_step(plan, costs, micro_batches).seconds;
  for (bool moved = true; moved;) {
    moved = false;
    StagePlan best_move = plan;
    for (size_t cut = 1; cut + 1 < plan.bounds.size(); ++cut)
      for (int step : {-1, 1}) {
        StagePlan candidate = plan;
        candidate.bounds[cut] += step;
        if (candidate.bounds[cut] <= candidate.bounds[cut - 1] || candidate.bounds[cut] >= candidate.bounds[cut + 1])
          continue;
        const double seconds = estimate_step(candidate, costs, micro_batches).seconds;
        if (seconds < best * (1 - kWorthMoving)) {
          best = seconds;
          best_move = std::move(candidate);
          moved = true;
        }
      }
    plan = std::move(best_move);
  }
  return plan;
}

}  // namespace

StagePlan fit_to_schedule(StagePlan plan, const UnitCosts& costs, int micro_batches) {
  // ResNet-18 in 4 chunks has 84 cuts, ResNet-50 in 8 chunks 19,448: try them all. Deeper nets
  // cut finer start from the balanced plan and move its cuts.
  if (cut_count(plan.bounds.back(), plan.chunks()) > 1e5) return descend(std::move(plan), costs, micro_batches);
  StagePlan best = plan, scratch = plan;
  double best_seconds = estimate_step(plan, costs, micro_batches).seconds;
  try_every_cut(scratch, 1, costs, micro_batches, best, best_seconds);
  return best;
}

}  // namespace histotrain
