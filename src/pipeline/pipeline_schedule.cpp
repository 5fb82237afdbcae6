#include "pipeline/pipeline_schedule.h"

#include <algorithm>
#include <set>
#include <utility>

#include "util/errors.h"

namespace histotrain {

PipelineSchedule parse_pipeline_schedule(const std::string& name) {
  if (const auto schedule = from_spelling<PipelineSchedule>(name)) return *schedule;
  throw UsageError("--pipeline-schedule must be " + spelling_choices<PipelineSchedule>() + ", not '" + name + "'");
}

std::string schedule_name(PipelineSchedule schedule) { return spelling(schedule); }

namespace {

std::vector<PipelineOp> fill_drain_ops(const StagePlan& plan, int stage, int micro_batches) {
  std::vector<PipelineOp> ops;
  const std::vector<int> chunks = plan.chunks_of(stage);
  for (int c : chunks)
    for (int m = 0; m < micro_batches; ++m) ops.push_back({c, m, true});
  for (auto c = chunks.rbegin(); c != chunks.rend(); ++c)
    for (int m = micro_batches - 1; m >= 0; --m) ops.push_back({*c, m, false});
  return ops;
}

// The k-th forward (or backward) of a stage in the interleaved order: micro-batches in groups of K,
// each group through the stage's chunks in turn (first to last going forward, last to first
// going back). Returns micro-batch -1 for the places of the missing micro-batches of a short last
// group (M not a multiple of K).
PipelineOp interleaved_op(const StagePlan& plan, int stage, int micro_batches, int k, bool forward) {
  const int stages = plan.stages(), chunks_per_stage = plan.virtual_stages();
  const int round = k / (stages * chunks_per_stage), in_round = k % (stages * chunks_per_stage);
  const int local_chunk = in_round / stages;
  const int micro_batch = round * stages + in_round % stages;
  const int chunk = (forward ? local_chunk : chunks_per_stage - 1 - local_chunk) * stages + stage;
  return {chunk, micro_batch < micro_batches ? micro_batch : -1, forward};
}

std::vector<PipelineOp> one_forward_one_backward_ops(const StagePlan& plan, int stage, int micro_batches) {
  const int stages = plan.stages(), chunks_per_stage = plan.virtual_stages();
  const int groups = (micro_batches + stages - 1) / stages;
  // With V = 1 the micro-batches need no grouping: round up only when they go round the ranks.
  const int padded = chunks_per_stage == 1 ? micro_batches : groups * stages;
  const int total = padded * chunks_per_stage;  // forwards (and backwards), with the missing ones
  // Forwards before the first backward: enough that the first micro-batch can come back through
  // the later stages (2 per stage after this one) and, interleaved, go round once more per chunk.
  int warm_up = chunks_per_stage == 1 ? stages - stage - 1 : 2 * (stages - stage - 1) + (chunks_per_stage - 1) * stages;
  if (chunks_per_stage > 1 && padded == stages) warm_up = total;  // one group: nothing to interleave
  warm_up = std::min(warm_up, total);
  std::vector<PipelineOp> ops;
  const auto add = [&](int k, bool forward) {
    const PipelineOp op = interleaved_op(plan, stage, micro_batches, k, forward);
    if (op.micro_batch >= 0) ops.push_back(op);
  };
  for (int k = 0; k < warm_up; ++k) add(k, true);
  for (int k = 0; k < total - warm_up; ++k) {
    add(warm_up + k, true);
    add(k, false);
  }
  for (int k = total - warm_up; k < total; ++k) add(k, false);
  return ops;
}

}  // namespace

std::vector<PipelineOp> stage_ops(const StagePlan& plan, int stage, int micro_batches, PipelineSchedule schedule) {
  return schedule == PipelineSchedule::fill_drain ? fill_drain_ops(plan, stage, micro_batches)
                                                  : one_forward_one_backward_ops(plan, stage, micro_batches);
}

int peak_held_activations(const std::vector<PipelineOp>& ops) {
  std::set<std::pair<int, int>> held;
  size_t peak = 0;
  for (const PipelineOp& op : ops) {
    if (op.forward)
      held.insert({op.chunk, op.micro_batch});
    else
      held.erase({op.chunk, op.micro_batch});
    peak = std::max(peak, held.size());
  }
  return static_cast<int>(peak);
}

}  // namespace histotrain
