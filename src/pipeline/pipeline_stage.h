// Pipeline model parallelism: rank s of K runs stage s of a ResNet cut by a StagePlan (one
// chunk of consecutive units, or V chunks with --virtual-stages V).
// Each step cuts the batch into M micro-batches and runs their forwards (activations go to the
// next chunk's rank) and backwards (gradients come back) in the order of a schedule
// (pipeline_schedule.h): fill-drain (GPipe) or one-forward-one-backward. The last stage owns
// the loss. Parameter gradients accumulate over the micro-batches (each micro-batch loss is
// divided by M), and the optimizer steps once per batch.
// BatchNorm normalises each micro-batch with its own statistics (as GPipe does); with M = 1 a
// step is exactly the unsplit model's step.
#pragma once
#include <torch/torch.h>

#include <map>
#include <vector>

#include "core/amp.h"
#include "core/loss.h"
#include "data/batches.h"
#include "distributed/communicator.h"
#include "model/resnet.h"
#include "pipeline/pipeline_schedule.h"
#include "pipeline/stage_plan.h"

namespace histotrain {

struct PipelineStepResult {
  double loss_sum = 0;  // last stage: sum over the batch of the per-image loss; 0 elsewhere
  int64_t correct = 0;  // last stage: correct top-1 predictions
  double seconds = 0;   // the whole step on this rank
  double waiting = 0;   // blocked in receives: idle (the bubble) plus transfer time
  // The most memory the step held beyond what was held before it, sampled between its ops:
  // activations kept for backward, gradients, tensors in flight. CPU stages only; -1 on a GPU.
  double held_peak_bytes = -1;
};

class PipelineStage {
 public:
  // Every rank holds the whole model (same initialisation); it computes and updates only its
  // stage's units.
  PipelineStage(ResNet& model, StagePlan plan, Communicator& comm, int64_t image_size,
                torch::MemoryFormat format = torch::MemoryFormat::Contiguous,
                PipelineSchedule schedule = PipelineSchedule::fill_drain);

  int stage() const { return stage_; }
  bool is_last() const { return stage_ == plan_.stage_of_chunk(plan_.chunks() - 1); }  // owns the loss
  const StagePlan& plan() const { return plan_; }

  // Forward and backward of one batch (every rank passes the same batch; only the first stage
  // reads the images, so the others may pass labels alone). `scaler` scales the last stage's
  // loss (fp16).
  PipelineStepResult step(const Batch& batch, int micro_batches, const LossOptions& loss_options,
                          Precision precision, GradScaler& scaler);

  // Every rank takes each unit's parameters and buffers, and the optimizer's momentum, from
  // the stage that trains it: afterwards any rank holds the whole trained model (to evaluate or
  // checkpoint it).
  void gather(torch::optim::SGD& optimizer);

 private:
  class StepState;  // one step's activations, sends and sums (pipeline_stage.cpp)
  torch::Tensor receive_like(const std::vector<int64_t>& shape, int from, int tag, double& waiting);
  std::vector<int64_t> input_shape(int chunk, int64_t micro_batch);

  ResNet& model_;
  StagePlan plan_;
  Communicator& comm_;
  int stage_;
  int64_t image_size_;
  torch::MemoryFormat format_;
  PipelineSchedule schedule_;
  std::map<int, std::vector<int64_t>> input_shapes_;  // per chunk, found once
};

}  // namespace histotrain
