// How long a pipeline step should take, from measured unit costs, under the schedule that
// PipelineStage runs (pipeline_schedule.h); and the cut of the network that makes it shortest.
#pragma once
#include <vector>

#include "pipeline/pipeline_schedule.h"
#include "pipeline/stage_plan.h"

namespace histotrain {

struct StepEstimate {
  double seconds = 0;          // the step, from the first forward to the last stage's update
  std::vector<double> idle;    // per stage: its share of the step spent waiting for other stages
  std::vector<double> receiving;  // per stage: seconds a step's messages to it spend in transfer
  std::vector<double> computing;  // per stage: seconds of forwards and backwards per step (no update)
};

// Replays `schedule` with each chunk's measured forward and backward time and each transfer's
// (costs.transfer; free if empty): every stage runs its ops in order, each as soon as its input
// has arrived from the stage before (activations) or after (gradients), and then its optimizer
// update. A transfer delays its message but keeps neither rank busy.
StepEstimate estimate_step(const StagePlan& plan, const UnitCosts& costs, int micro_batches,
                           PipelineSchedule schedule);

// The cut of the network into plan.chunks() chunks on plan.stages() stages whose estimated step is
// shortest, of every cut tried (`plan`'s stays unless another is more than 0.1% shorter).
// balance_stages evens out the largest chunk, which is what counts with one
// chunk per stage; with several chunks per stage each stage's total counts too, and the two
// criteria pick different cuts.
StagePlan fit_to_schedule(StagePlan plan, const UnitCosts& costs, int micro_batches, PipelineSchedule schedule);

}  // namespace histotrain
