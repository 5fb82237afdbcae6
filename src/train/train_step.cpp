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
void capture_step(Trainee& t, StepEngine& engine, CudaGraphMode mode, const RunWorld& world, const Batch& example) {
  const auto start = Clock::now();
  try {
    engine.graph = std::make_unique<GraphedTrainStep>(t.model, *t.optimizer, t.precision, t.loss, t.average.get(),
                                                      example);
  } catch (const std::exception& e) {
    if (mode == CudaGraphMode::on) throw;
    engine.use_graph = false;
    world.log(std::string("warning: the train step could not be captured as a CUDA graph; the run goes on without "
                          "one: ") + e.what());
    return;
  }
  engine.graph_capture_seconds = seconds_since(start);
  char line[96];
  std::snprintf(line, sizeof line, "train step captured as a CUDA graph in %.2f s (3 warm-up steps included)",
                engine.graph_capture_seconds);
  world.log(line);
}

// Forward and backward through the pipeline's stages in `micro` micro-batches; adds the batch's
// mean loss over its `images` and correct count (non-zero on the last stage only) to the sums.
void pipeline_forward_backward(Trainee& t, StepEngine& engine, int micro, int64_t images, RunProgress& p,
                               const Batch& batch, EpochSums& sums) {
  const PipelineStepResult r =
      engine.pipeline ? engine.pipeline->step(batch, micro, t.loss, t.precision, *t.scaler)
                      : local_pipeline_step(t.model, *engine.device_stages, engine.device_schedule, batch, micro,
                                            t.loss, t.precision, *t.scaler);
  sums.loss += r.loss_sum / images;
  sums.correct += r.correct;
  p.pipeline_seconds += r.seconds;
  p.pipeline_waiting += r.waiting;
  ++p.pipeline_steps;
  p.step_held_peak_bytes = std::max(p.step_held_peak_bytes, r.held_peak_bytes);
}

// Forward and backward of one of the step's `parts` slices of the batch, its loss divided by
// `parts` so that the gradients add up to the whole batch's mean. `reduce`: the step's last
// slice, whose backward averages the gradients over ranks (the all-reduce of the whole sum).
void forward_backward_part(Trainee& t, const RunWorld& world, RunProgress& p, const Batch& batch, int parts,
                           bool reduce, EpochSums& sums) {
  const bool on_cpu = world.device.is_cpu();
  const double held_before = on_cpu ? static_cast<double>(allocated_bytes()) : 0;
  torch::Tensor logits;
  {
    AutocastScope autocast(t.precision, world.device);
    logits = t.model->forward(batch.images);
  }
  LossAndCorrect loss = classification_loss(logits, batch.labels, batch.targets, t.loss);
  if (parts > 1) loss.loss = loss.loss / parts;
  // Sampled where a pipeline stage samples, between passes: after the forward every activation
  // the backward needs is held; after the backward, the gradients.
  const auto sample_held = [&] {
    if (on_cpu)
      p.step_held_peak_bytes = std::max(p.step_held_peak_bytes, static_cast<double>(allocated_bytes()) - held_before);
  };
  sample_held();
  const torch::Tensor scaled = t.scaler->scale_loss(loss.loss);
  if (reduce)
    world.dp->backward(scaled);  // and, with several ranks, the gradient all-reduce
  else
    world.dp->backward_without_sync(scaled);
  sample_held();
  sums.loss += loss.loss.detach();
  sums.correct += loss.correct;
}

// Forward and backward of the step's batch: through the pipeline when there is one, else in
// --accumulate slices of --batch-size images (one slice without it).
void forward_backward(Run& run, RunProgress& p, const Batch& batch, EpochSums& sums) {
  const TrainConfig& c = run.config;
  if (run.pipelined())
    return pipeline_forward_backward(run.trainee, run.engine, c.parallel.micro_batches, c.optim.batch_size, p, batch,
                                     sums);
  const int parts = c.optim.accumulate;
  if (parts == 1) return forward_backward_part(run.trainee, run.world, p, batch, 1, true, sums);
  const int64_t size = c.optim.batch_size;
  for (int k = 0; k < parts; ++k)
    forward_backward_part(run.trainee, run.world, p, batch.slice(k * size, size), parts, k == parts - 1, sums);
}

// --clip-grad: the gradients unscaled first under fp16, clipped, stepped unless the scaler found
// an overflow (whose step every rank skips alike: the all-reduced gradients are the same).
bool clipped_update(Trainee& t, const torch::Device& device, double clip) {
  const bool finite = !t.scaler->enabled() || t.scaler->unscale_and_check(*t.optimizer);
  if (finite) {
    clip_gradient_norm(*t.optimizer, clip);
    fast_sgd_step(*t.optimizer, device);
  }
  if (t.scaler->enabled()) t.scaler->update(!finite);
  return finite;
}

// The optimizer step (and the weight average); false when fp16 loss scaling skipped it.
bool update_weights(Trainee& t, const torch::Device& device, double clip, int64_t step) {
  bool stepped = true;
  if (clip > 0)
    stepped = clipped_update(t, device, clip);
  else if (t.scaler->enabled())
    stepped = t.scaler->step(*t.optimizer);
  else
    fast_sgd_step(*t.optimizer, device);
  if (t.average) t.average->update(step);
  return stepped;
}

// The share of training done before the next step: of the time budget's clock (agreed by the
// ranks), or of the scheduled steps.
double training_share(const StepPlan& plan, const RunProgress& p) {
  if (plan.budget.on()) return p.budget_clock / plan.budget.seconds;
  return static_cast<double>(p.step) / static_cast<double>(std::max<int64_t>(1, plan.schedule_steps));
}

// The batch at the side progressive resizing gives this step (the batch itself without it); says
// when the side changes.
Batch at_training_side(const StepPlan& plan, const RunWorld& world, torch::MemoryFormat format, RunProgress& p,
                       Batch batch) {
  if (!plan.resolution.on()) return batch;
  const int side = plan.resolution.side_at(training_share(plan, p));
  if (side != p.side) {
    world.log("image side " + std::to_string(side) + " px from step " + std::to_string(p.step + 1));
    p.side = side;
  }
  if (batch.images.defined()) batch.images = resized_batch(batch.images, side, format);
  return batch;
}

}  // namespace

bool take_step(Run& run, RunProgress& p, const Batch& full_size_batch, double lr, EpochSums& sums) {
  Trainee& t = run.trainee;
  StepEngine& engine = run.engine;
  const Batch batch = at_training_side(run.plan, run.world, t.format, p, full_size_batch);
  p.last_lr = lr;
  bool stepped = true;
  if (engine.use_graph && !engine.graph) capture_step(t, engine, run.config.precision.cuda_graph, run.world, batch);
  if (engine.use_graph) {
    engine.graph->step(batch, lr, t.average ? 1 - t.average->decay_at(p.step) : 0);
    sums.loss = engine.graph->loss_sum();
    sums.correct = engine.graph->correct();
  } else {
    set_learning_rate(*t.optimizer, lr);
    clear_gradients(*t.optimizer);
    forward_backward(run, p, batch, sums);
    stepped = update_weights(t, run.world.device, run.config.optim.clip_grad, p.step);
  }
  ++p.step;
  return stepped;
}

}  // namespace histotrain
