// One optimizer step: see train_step.h. The epoch loop around it is trainer.cpp's.
#include "train/train_step.h"

#include <algorithm>
#include <cstdio>

#include "core/loss.h"
#include "core/sgd_update.h"
#include "pipeline/local_pipeline.h"
#include "train/resolution_schedule.h"
#include "util/allocator.h"

namespace histotrain {

namespace {

// With --cuda-graph auto a failed capture is not fatal: the run goes on with the eager step.
void capture_step(Run& run, const Batch& example) {
  const auto start = Clock::now();
  try {
    run.graph = std::make_unique<GraphedTrainStep>(run.model, *run.optimizer, run.precision,
                                                   run.loss, run.average.get(), example);
  } catch (const std::exception& e) {
    if (run.config.precision.cuda_graph == CudaGraphMode::on) throw;
    run.use_graph = false;
    run.log(std::string("warning: the train step could not be captured as a CUDA graph; the run goes on without "
                        "one: ") + e.what());
    return;
  }
  run.graph_capture_seconds = seconds_since(start);
  char line[96];
  std::snprintf(line, sizeof line, "train step captured as a CUDA graph in %.2f s (3 warm-up steps included)",
                run.graph_capture_seconds);
  run.log(line);
}

// Forward and backward through the pipeline's stages; adds the batch's mean loss and correct
// count (non-zero on the last stage only) to the sums.
void pipeline_forward_backward(Run& run, RunProgress& p, const Batch& batch, EpochSums& sums) {
  const TrainConfig& c = run.config;
  const int micro = c.parallel.micro_batches;
  const PipelineStepResult r =
      run.pipeline ? run.pipeline->step(batch, micro, run.loss, run.precision, *run.scaler)
                   : local_pipeline_step(run.model, *run.device_stages, run.device_schedule, batch, micro, run.loss,
                                         run.precision, *run.scaler);
  sums.loss += r.loss_sum / c.optim.batch_size;
  sums.correct += r.correct;
  p.pipeline_seconds += r.seconds;
  p.pipeline_waiting += r.waiting;
  ++p.pipeline_steps;
  p.step_held_peak_bytes = std::max(p.step_held_peak_bytes, r.held_peak_bytes);
}

// Forward and backward of one of the step's `parts` slices of the batch, its loss divided by
// `parts` so that the gradients add up to the whole batch's mean. `reduce`: the step's last
// slice, whose backward averages the gradients over ranks (the all-reduce of the whole sum).
void forward_backward_part(Run& run, RunProgress& p, const Batch& batch, int parts, bool reduce, EpochSums& sums) {
  const double held_before = run.device.is_cpu() ? static_cast<double>(allocated_bytes()) : 0;
  torch::Tensor logits;
  {
    AutocastScope autocast(run.precision, run.device);
    logits = run.model->forward(batch.images);
  }
  LossAndCorrect loss = classification_loss(logits, batch.labels, batch.targets, run.loss);
  if (parts > 1) loss.loss = loss.loss / parts;
  // Sampled where a pipeline stage samples, between passes: after the forward every activation
  // the backward needs is held; after the backward, the gradients.
  const auto sample_held = [&] {
    if (run.device.is_cpu())
      p.step_held_peak_bytes = std::max(p.step_held_peak_bytes, static_cast<double>(allocated_bytes()) - held_before);
  };
  sample_held();
  const torch::Tensor scaled = run.scaler->scale_loss(loss.loss);
  if (reduce)
    run.dp->backward(scaled);  // and, with several ranks, the gradient all-reduce
  else
    run.dp->backward_without_sync(scaled);
  sample_held();
  sums.loss += loss.loss.detach();
  sums.correct += loss.correct;
}

// Forward and backward of the step's batch: through the pipeline when there is one, else in
// --accumulate slices of --batch-size images (one slice without it).
void forward_backward(Run& run, RunProgress& p, const Batch& batch, EpochSums& sums) {
  if (run.pipelined()) return pipeline_forward_backward(run, p, batch, sums);
  const int parts = run.config.optim.accumulate;
  if (parts == 1) return forward_backward_part(run, p, batch, 1, true, sums);
  const int64_t size = run.config.optim.batch_size;
  for (int k = 0; k < parts; ++k) forward_backward_part(run, p, batch.slice(k * size, size), parts, k == parts - 1, sums);
}

// --clip-grad: the gradients unscaled first under fp16, clipped, stepped unless the scaler found
// an overflow (whose step every rank skips alike: the all-reduced gradients are the same).
bool clipped_update(Run& run) {
  const bool finite = !run.scaler->enabled() || run.scaler->unscale_and_check(*run.optimizer);
  if (finite) {
    clip_gradient_norm(*run.optimizer, run.config.optim.clip_grad);
    fast_sgd_step(*run.optimizer, run.device);
  }
  if (run.scaler->enabled()) run.scaler->update(!finite);
  return finite;
}

// The optimizer step (and the weight average); false when fp16 loss scaling skipped it.
bool update_weights(Run& run, int64_t step) {
  bool stepped = true;
  if (run.config.optim.clip_grad > 0)
    stepped = clipped_update(run);
  else if (run.scaler->enabled())
    stepped = run.scaler->step(*run.optimizer);
  else
    fast_sgd_step(*run.optimizer, run.device);
  if (run.average) run.average->update(step);
  return stepped;
}

// The share of training done before the next step: of the time budget's clock (agreed by the
// ranks), or of the scheduled steps.
double training_share(const Run& run, const RunProgress& p) {
  if (run.budget.on()) return p.budget_clock / run.budget.seconds;
  return static_cast<double>(p.step) / static_cast<double>(std::max<int64_t>(1, run.schedule_steps));
}

// The batch at the side progressive resizing gives this step (the batch itself without it); says
// when the side changes.
Batch at_training_side(const Run& run, RunProgress& p, Batch batch) {
  if (!run.resolution.on()) return batch;
  const int side = run.resolution.side_at(training_share(run, p));
  if (side != p.side) {
    run.log("image side " + std::to_string(side) + " px from step " + std::to_string(p.step + 1));
    p.side = side;
  }
  if (batch.images.defined()) batch.images = resized_batch(batch.images, side, run.format);
  return batch;
}

}  // namespace

bool take_step(Run& run, RunProgress& p, const Batch& full_size_batch, double lr, EpochSums& sums) {
  const Batch batch = at_training_side(run, p, full_size_batch);
  p.last_lr = lr;
  bool stepped = true;
  if (run.use_graph && !run.graph) capture_step(run, batch);
  if (run.use_graph) {
    run.graph->step(batch, lr, run.average ? 1 - run.average->decay_at(p.step) : 0);
    sums.loss = run.graph->loss_sum();
    sums.correct = run.graph->correct();
  } else {
    set_learning_rate(*run.optimizer, lr);
    clear_gradients(*run.optimizer);
    forward_backward(run, p, batch, sums);
    stepped = update_weights(run, p.step);
  }
  ++p.step;
  return stepped;
}

}  // namespace histotrain
