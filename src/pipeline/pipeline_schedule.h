// The order in which each pipeline stage runs the forwards and backwards of a step's
// micro-batches. PipelineStage runs it and schedule_estimate replays it, so the estimate and the
// run cannot drift apart.
//
// fill-drain (GPipe): every forward, chunk by chunk, then every backward in reverse. A stage holds
// the activations of all M micro-batches of each of its chunks at the end of the fill.
// 1F1B (one forward, one backward): after a warm-up of forwards, each forward is followed by the
// backward of the oldest micro-batch, so activations are freed as the step goes and a stage holds
// at most K of them (V = 1) whatever M is. With one chunk per stage its bubble is fill-drain's,
// (K-1)/(M+K-1). With V chunks per stage it is the interleaved schedule of Narayanan et al.
// (SC '21): micro-batches go through each chunk in groups of K, and with M a multiple of K the
// bubble is fill-drain's too; otherwise the last group is short and the step a little longer.
#pragma once
#include <string>
#include <vector>

#include "pipeline/stage_plan.h"
#include "util/enum_names.h"

namespace histotrain {

enum class PipelineSchedule { fill_drain, one_forward_one_backward };
template <>
struct Spellings<PipelineSchedule> {
  static constexpr std::pair<PipelineSchedule, const char*> all[] = {
      {PipelineSchedule::fill_drain, "gpipe"}, {PipelineSchedule::one_forward_one_backward, "1f1b"}};
};

// "gpipe" or "1f1b"; UsageError for anything else.
PipelineSchedule parse_pipeline_schedule(const std::string& name);
std::string schedule_name(PipelineSchedule schedule);

struct PipelineOp {
  int chunk;
  int micro_batch;
  bool forward;  // else backward
};

// What stage `stage` of `plan` runs in one step of `micro_batches` micro-batches, in order.
std::vector<PipelineOp> stage_ops(const StagePlan& plan, int stage, int micro_batches, PipelineSchedule schedule);

// The most (chunk, micro-batch) activations held at once while running `ops`: forwarded, not yet
// backwarded. Each is the input and saved tensors of one micro-batch through one chunk.
int peak_held_activations(const std::vector<PipelineOp>& ops);

}  // namespace histotrain
