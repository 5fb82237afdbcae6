// Pipeline stages on several devices inside one process (--devices cuda:0,cuda:1; cpu,cpu to
// test): each stage's units live on its device and activations move between them. A step runs
// the micro-batches' forwards and backwards in the first stage's order of the schedule
// (pipeline_schedule.h): with GPipe every forward, then every backward in reverse; with 1F1B each
// forward past the first K is followed by the oldest micro-batch's backward, so at most K
// micro-batches' activations are held. On GPUs the host queues stage s+1's work for one
// micro-batch while stage s's device still computes the next, so the devices work at the same
// time; on CPUs the stages take turns.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "core/amp.h"
#include "core/loss.h"
#include "core/runtime.h"
#include "data/batches.h"
#include "model/resnet.h"
#include "pipeline/pipeline_schedule.h"
#include "pipeline/pipeline_stage.h"
#include "pipeline/stage_plan.h"

namespace histotrain {

// --devices' devices, one per stage: two or more (a UsageError otherwise).
std::vector<torch::Device> open_devices(const DeviceList& list);
// The same from text, "cpu,cpu" or "cuda:0,cuda:1".
std::vector<torch::Device> parse_devices(const std::string& list);

// Moves each stage's units to its device (parameters keep their identity: an optimizer built
// before still holds them).
void place_stages(ResNet& model, const StagePlan& plan, const std::vector<torch::Device>& devices);

// One batch's forward and backward; gradients accumulate the mean over the micro-batches.
PipelineStepResult local_pipeline_step(ResNet& model, const StagePlan& plan, PipelineSchedule schedule,
                                       const Batch& batch, int micro_batches,
                                       const LossOptions& loss_options, Precision precision,
                                       GradScaler& scaler);

}  // namespace histotrain
