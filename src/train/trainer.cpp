#include "train/trainer.h"

#include <future>

#include "core/checkpoint.h"
#include "core/compat.h"
#include "core/evaluate.h"
#include "core/loss.h"
#include "core/schedule.h"
#include "data/batches.h"
#include "pipeline/local_pipeline.h"
#include "train/optimizer.h"
#include "train/run.h"
#include "train/system_info.h"
#include "util/allocator.h"
#include "util/json_text.h"
#include "util/memory.h"
#include "util/progress.h"
#include "util/stop_signal.h"

namespace histotrain {

namespace {

// One epoch's figures, over all ranks; `progress` is what a checkpoint taken now would carry.
struct EpochStats {
  double loss = 0, accuracy = 0, seconds = 0;
  int64_t images = 0;
  int64_t skipped_steps = 0;  // fp16 steps skipped for inf/NaN gradients
  EpochProgress progress;     // all the steps of the epoch taken so far, with their sums
  bool complete = false;      // false: stopped inside the epoch (--max-steps, a signal)
  bool stopped = false;       // every rank agreed to stop for a signal
};

// Reads the loss back: the only host synchronisation of a step, every tenth step. `carried`: the
// part of loss_sum from before a resume.
void show_progress(Progress& progress, int64_t steps_done, const Run& run, const torch::Tensor& loss_sum,
                   double carried) {
  char extra[64];
  std::snprintf(extra, sizeof extra, "loss %.3f", (loss_sum.item<double>() - carried) / steps_done);
  progress.update(steps_done * run.global_batch(), extra);
}

// With --cuda-graph auto a failed capture is not fatal: the run goes on with the eager step.
void capture_step(Run& run, const Batch& example) {
  const auto start = Clock::now();
  try {
    run.graph = std::make_unique<GraphedTrainStep>(run.model, *run.optimizer, run.precision,
                                                   run.config.label_smoothing, run.average.get(), example);
  } catch (const std::exception& e) {
    if (run.config.cuda_graph == "on") throw;
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

// Forward and backward of one batch (through the pipeline when there is one, with the gradient
// all-reduce when there are replicas); adds the batch's mean loss and correct count to the sums.
void forward_backward(Run& run, const Batch& batch, torch::Tensor& loss_sum, torch::Tensor& correct) {
  const TrainConfig& c = run.config;
  if (run.pipeline || run.device_stages) {
    const PipelineStepResult r =
        run.pipeline ? run.pipeline->step(batch, c.micro_batches, c.label_smoothing, run.precision, *run.scaler)
                     : local_pipeline_step(run.model, *run.device_stages, run.device_schedule, batch,
                                           c.micro_batches, c.label_smoothing, run.precision, *run.scaler);
    loss_sum += r.loss_sum / c.batch_size;  // non-zero on the last stage only
    correct += r.correct;
    run.pipeline_seconds += r.seconds;
    run.pipeline_waiting += r.waiting;
    ++run.pipeline_steps;
    run.step_held_peak_bytes = std::max(run.step_held_peak_bytes, r.held_peak_bytes);
    return;
  }
  const double held_before = run.device.is_cpu() ? static_cast<double>(allocated_bytes()) : 0;
  torch::Tensor logits;
  {
    AutocastScope autocast(run.precision, run.device);
    logits = run.model->forward(batch.images);
  }
  const LossAndCorrect loss = classification_loss(logits, batch.labels, c.label_smoothing);
  // Sampled where a pipeline stage samples, between passes: after the forward every activation
  // the backward needs is held; after the backward, the gradients.
  const auto sample_held = [&] {
    if (run.device.is_cpu())
      run.step_held_peak_bytes = std::max(run.step_held_peak_bytes, static_cast<double>(allocated_bytes()) - held_before);
  };
  sample_held();
  run.dp->backward(run.scaler->scale_loss(loss.loss));  // and, with several ranks, the gradient all-reduce
  sample_held();
  loss_sum += loss.loss.detach();
  correct += loss.correct;
}

// The optimizer step (and the weight average); false when fp16 loss scaling skipped it.
bool update_weights(Run& run) {
  bool stepped = true;
  // On a GPU the multi-tensor update saves ~300 kernel launches per step. On CPUs it is no
  // faster and allocates every step direction at once; in an A/B run it made the whole CPU step
  // about 10% slower (backward 144 against 129 ms), so there SGD::step() updates one tensor at a time.
  if (run.scaler->enabled())
    stepped = run.scaler->step(*run.optimizer);
  else if (run.device.is_cuda())
    multi_tensor_sgd_step(*run.optimizer);
  else
    run.optimizer->step();
  if (run.average) run.average->update(run.step);
  return stepped;
}

// Augmentation randomness depends only on (seed, epoch, rank, step): a run resumed at any step
// replays it exactly, and a prefetching thread needs no shared generator.
std::mt19937_64 augmentation_rng(uint64_t seed, int64_t epoch, int rank, int64_t step_in_epoch) {
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(epoch),
                    static_cast<uint32_t>(rank), static_cast<uint32_t>(step_in_epoch), 0x68747261u};
  return std::mt19937_64(seq);
}

// Whether to stop after this step for SIGINT/SIGTERM. Every rank stops at the same step: a signal
// that any rank received is agreed on by all (on GPUs every tenth step, as each check waits for
// the device).
bool stop_requested(Run& run, int64_t step_in_epoch) {
  if (run.world_size() == 1) return stop_signal() != 0;
  if (run.device.is_cuda() && (step_in_epoch + 1) % 10 != 0) return false;
  const int agreed = run.dp->agree_on_stop(stop_signal());
  if (agreed != 0) request_stop(agreed);
  return agreed != 0;
}

// The epoch so far, summed over ranks: the steps of it taken before a resume (`before`) plus
// this process's. A collective: every rank calls it at the same step.
EpochProgress progress_over_ranks(Run& run, const EpochProgress& before, int64_t steps, const torch::Tensor& loss_sum,
                                  const torch::Tensor& correct, double seconds) {
  EpochProgress p;
  p.steps = before.steps + steps;
  p.loss_sum = before.loss_sum + run.dp->sum(loss_sum.item<double>());
  p.correct = before.correct + run.dp->sum(static_cast<double>(correct.item<int64_t>()));
  p.seconds = before.seconds + seconds;
  return p;
}

// The checkpoint after `epochs_done` whole epochs and `progress` of the next one; rank 0 writes
// it (pipeline stages must have gathered the model).
void write_checkpoint(Run& run, int64_t epochs_done, double train_seconds, const EpochProgress& progress = {}) {
  if (!run.is_main()) return;
  save_checkpoint(run.out, run.model, *run.optimizer, *run.scaler,
                  checkpoint_meta(run, epochs_done, train_seconds, progress),
                  run.average ? &run.average->model() : nullptr);
}

// A checkpoint between validations (--checkpoint-steps, a signal); a collective, as pipeline
// stages first gather the whole model.
void save_between_validations(Run& run, int64_t epochs_done, const EpochProgress& progress, double train_seconds) {
  if (run.pipeline) run.pipeline->gather(*run.optimizer);
  write_checkpoint(run, epochs_done, train_seconds, progress);
}

// Ends a run stopped by a signal, once its checkpoint is written: no rank exits before rank 0
// has written it, as a launcher may stop the rest when one exits.
void stop_for_signal(Run& run) {
  run.stopped_by = stop_signal();
  run.dp->barrier();
}

// Trains the rest of epoch `epoch` (from step `before.steps` of it). Stops early at --max-steps
// or for a signal; writes a checkpoint every --checkpoint-steps steps. `seconds_before_epoch`:
// training time of the epochs before, for the checkpoints.
EpochStats train_epoch(Run& run, const BatchMaker& batches, int64_t epoch, const LrSchedule& schedule,
                       const EpochProgress& before, double seconds_before_epoch) {
  const TrainConfig& c = run.config;
  const auto start = Clock::now();
  // This rank's disjoint shard of the epoch's shuffled order.
  const std::vector<int64_t> order =
      epoch_order(run.split.train, c.seed, epoch, /*shuffle=*/true, run.dp->data_rank(), run.data_ranks());
  Augmentation augmentation;
  augmentation.dihedral = c.augment;
  augmentation.max_shift = c.augment ? static_cast<int>(c.max_shift * c.image_size) : 0;
  augmentation.color_jitter = c.augment ? c.color_jitter : 0;

  const int64_t first = before.steps;
  const int64_t end = first + std::min(run.steps_per_epoch - first, run.stop_step - run.step);
  int64_t skipped = 0;
  Progress progress("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(c.epochs),
                    (end - first) * run.global_batch(), "img", c.quiet || !run.is_main());
  run.model->train();
  // Running sums stay on the device and are read only for the progress line. The loss sum is
  // float64 and, on the main rank, goes on from the sum saved before a resume: a resumed run then
  // adds the same numbers in the same order as a run never interrupted, and reports the same
  // epoch loss to the last bit (two partial sums added at the end would differ in it).
  const double carried = !run.use_graph && run.is_main() ? before.loss_sum : 0;  // the graph keeps its own sum
  EpochProgress uncarried = before;
  if (!run.use_graph) uncarried.loss_sum = 0;  // in loss_sum already, on the main rank
  torch::Tensor loss_sum = torch::full({}, carried, torch::TensorOptions().dtype(torch::kFloat64).device(run.device));
  torch::Tensor correct = torch::zeros({}, torch::TensorOptions().dtype(torch::kLong).device(run.device));
  if (run.graph) run.graph->reset_sums();
  const auto batch_for_step = [&](int64_t s) {
    const int64_t* items = order.data() + s * c.batch_size;
    // Later pipeline stages never see the images: they need the labels only.
    if (run.pipeline && run.pipeline->stage() > 0) return batches.make_labels(items, c.batch_size);
    std::mt19937_64 rng = augmentation_rng(c.seed, epoch, run.dp->data_rank(), s);
    return batches.make(items, c.batch_size, &augmentation, &rng);
  };
  // --prefetch: the next batch is assembled on a second thread while this step runs.
  std::future<Batch> next;
  if (c.prefetch && end > first) next = std::async(std::launch::async, batch_for_step, first);
  int64_t s = first;
  bool stopped = false;
  while (s < end && !stopped) {
    const Batch batch = c.prefetch ? next.get() : batch_for_step(s);
    if (c.prefetch && s + 1 < end) next = std::async(std::launch::async, batch_for_step, s + 1);
    if (run.use_graph && !run.graph) capture_step(run, batch);
    if (run.use_graph) {
      run.graph->step(batch, schedule.at(run.step), run.average ? 1 - run.average->decay_at(run.step) : 0);
      loss_sum = run.graph->loss_sum();
      correct = run.graph->correct();
    } else {
      set_learning_rate(*run.optimizer, schedule.at(run.step));
      clear_gradients(*run.optimizer);
      forward_backward(run, batch, loss_sum, correct);
      if (!update_weights(run)) ++skipped;
    }
    ++s;
    ++run.step;
    const int64_t done = s - first;
    if ((done % 10 == 0 || s == end) && !run.pipeline && !run.device_stages)
      show_progress(progress, done, run, loss_sum, carried);
    stopped = stop_requested(run, s - 1);
    if (!stopped && c.checkpoint_steps > 0 && s < run.steps_per_epoch && s % c.checkpoint_steps == 0)
      save_between_validations(run, epoch, progress_over_ranks(run, uncarried, done, loss_sum, correct, seconds_since(start)),
                               seconds_before_epoch + before.seconds + seconds_since(start));
  }
  if (next.valid()) next.wait();  // a prefetch still running when a signal stopped the epoch
  EpochStats stats;
  stats.progress = progress_over_ranks(run, uncarried, s - first, loss_sum, correct, seconds_since(start));
  stats.complete = stats.progress.steps == run.steps_per_epoch;
  stats.stopped = stopped;
  stats.images = stats.progress.steps * run.global_batch();
  stats.skipped_steps = skipped;
  if (stats.progress.steps > 0) {
    stats.loss = stats.progress.loss_sum / static_cast<double>(stats.progress.steps * run.data_ranks());
    stats.accuracy = stats.progress.correct / static_cast<double>(stats.images);
  }
  stats.seconds = stats.progress.seconds;
  if (run.pipeline || run.device_stages) progress.update((s - first) * run.global_batch(), "");
  progress.finish();
  return stats;
}

// Each rank evaluates its shard of the validation set with rank 0's BatchNorm statistics; the
// counts and loss sums are added over ranks before any ratio is taken.
EvalResult validate_globally(Run& run, const BatchMaker& batches) {
  if (!run.pipeline) run.dp->broadcast_buffers(run.evaluated_model());  // pipeline stages gathered the model already
  const std::vector<int64_t> mine = run.dp->shard(run.split.val);
  EvalResult val = evaluate(run.evaluated_model(), batches, mine, static_cast<int64_t>(run.data.classes.size()),
                            run.config.batch_size * 2, run.precision, run.config.tta);
  run.dp->sum(val.confusion);
  run.dp->sum(val.single_view);
  val.loss = run.dp->sum(val.loss * static_cast<double>(mine.size())) / static_cast<double>(run.split.val.size());
  return val;
}

}  // namespace

TrainConfig resumed_config(const std::string& run, const nlohmann::json& overrides) {
  const fs::path from = run_folder(run);
  nlohmann::json saved;
  if (has_checkpoint(from) || !fs::exists(from / kRunConfigFile)) {
    saved = read_checkpoint_meta(from).at("config");  // a clear error when there is neither
    saved["resume"] = from.string();
  } else {
    // Stopped before its first checkpoint: nothing to continue, so it starts again with its flags.
    saved = nlohmann::json::parse(read_text_file(from / kRunConfigFile));
    saved["resume"] = "";
    std::fprintf(stderr, "note: %s has no checkpoint yet (the run stopped before its first one); it starts again "
                 "from step 0 with the flags it was given\n", from.string().c_str());
  }
  for (const auto& [key, value] : overrides.items()) saved[key] = value;
  if (!overrides.contains("out")) saved["out"] = from.string();
  return config_from_json(saved);
}

TrainOutcome train(const TrainConfig& config) {
  validate(config);
  Run run;
  run.config = config;
  prepare(run);
  if (!config.resume.empty()) restore(run);
  // From here on Ctrl-C and SIGTERM stop the run at a step boundary, with a checkpoint. Once
  // rank 0 reports that training starts, every rank catches them (the barrier).
  catch_stop_signals();
  run.dp->barrier();
  run.dp->broadcast_model(run.model);  // every rank starts from rank 0's weights
  run.dp->attach(run.model, *run.scaler, run.config.bucket_mb);
  const TrainConfig& c = run.config;
  const BatchMaker batches(run.data, run.device, run.format);
  const LrSchedule schedule(c.schedule, run.peak_lr, static_cast<int64_t>(c.warmup_epochs * run.steps_per_epoch),
                            run.schedule_steps);
  run.log(start_line(run));

  // The training time before the epoch the run starts in (a checkpoint inside an epoch counts
  // that epoch's steps in both train_seconds and its progress).
  double train_seconds = run.previous_seconds - run.resumed_progress.seconds;
  int64_t epochs_done = run.start_epoch;
  for (int64_t epoch = run.start_epoch; epoch < c.epochs && run.step < run.stop_step; ++epoch) {
    const EpochProgress before = epoch == run.start_epoch ? run.resumed_progress : EpochProgress{};
    const EpochStats stats = train_epoch(run, batches, epoch, schedule, before, train_seconds);
    if (stats.stopped && !stats.complete) {  // a signal: keep the work, skip the reports
      save_between_validations(run, epoch, stats.progress, train_seconds + stats.seconds);
      stop_for_signal(run);
      break;
    }
    train_seconds += stats.seconds;
    epochs_done = epoch + 1;
    // --val-every: validation and checkpoint every N epochs, and always after the last one.
    const bool last = epochs_done == c.epochs || run.step >= run.stop_step;
    const bool milestone = last || epochs_done % c.val_every == 0;
    if (run.pipeline && milestone) run.pipeline->gather(*run.optimizer);  // every rank: the whole model, for validation and the checkpoint
    nlohmann::json record = {{"epoch", epochs_done},
                             {"step", run.step},
                             {"lr", schedule.at(std::max<int64_t>(0, run.step - 1))},
                             {"train_loss", stats.loss},
                             {"train_acc", stats.accuracy},
                             {"train_images_per_s", stats.images / std::max(1e-9, stats.seconds)},
                             {"epoch_train_s", stats.seconds},
                             {"train_s", train_seconds}};
    if (!stats.complete) record["epoch_steps"] = stats.progress.steps;  // stopped inside the epoch (--max-steps)
    if (run.scaler->enabled()) {
      record["loss_scale"] = run.scaler->scale();
      record["skipped_steps"] = stats.skipped_steps;
    }
    std::string line = "epoch " + std::to_string(epochs_done) + "/" + std::to_string(c.epochs);
    char buf[160];
    std::snprintf(buf, sizeof buf, ": train loss %.3f acc %.3f, %.1f img/s", stats.loss, stats.accuracy,
                  stats.images / std::max(1e-9, stats.seconds));
    line += buf;
    if (!run.split.val.empty() && milestone) {
      const EvalResult val = validate_globally(run, batches);
      run.last_val = val.confusion.to_json(run.data.classes);
      run.last_val["loss"] = val.loss;
      if (c.tta) run.last_val["accuracy_single_view"] = val.single_view.accuracy();
      record["val_loss"] = val.loss;
      record["val_acc"] = val.confusion.accuracy();
      record["val_macro_f1"] = val.confusion.macro_f1();
      if (c.tta) record["val_acc_single_view"] = val.single_view.accuracy();
      record["val_s"] = val.seconds;
      run.best_acc = std::max(run.best_acc, val.confusion.accuracy());
      std::snprintf(buf, sizeof buf, "; val loss %.3f acc %.4f macro-F1 %.4f", val.loss, val.confusion.accuracy(),
                    val.confusion.macro_f1());
      line += buf;
      if (c.tta) {
        std::snprintf(buf, sizeof buf, " (with flips/rotations; %.4f without)", val.single_view.accuracy());
        line += buf;
      }
      if (c.target_acc > 0 && val.confusion.accuracy() >= c.target_acc && run.time_to_target < 0)
        run.time_to_target = train_seconds;
    }
    run.log(line);
    if (run.is_main()) append_line(run.out / "metrics.jsonl", json_text(record));
    if (milestone) {
      // --max-steps inside an epoch keeps that epoch's progress: a resume finishes the epoch.
      if (!stats.complete) epochs_done = epoch;
      write_checkpoint(run, epochs_done, train_seconds, stats.complete ? EpochProgress{} : stats.progress);
    }
    if (stats.stopped && run.step < run.stop_step) {  // a signal at the epoch's last step
      if (!milestone) save_between_validations(run, epochs_done, {}, train_seconds);
      stop_for_signal(run);
      break;
    }
    if (run.time_to_target >= 0) {
      run.log("reached target accuracy " + std::to_string(c.target_acc) + " after " + format_duration(run.time_to_target) +
          " of training");
      break;
    }
  }

  release_stop_signals();
  if (run.stopped_by != 0) {
    run.log(std::string("stopped by ") + signal_name(run.stopped_by) + " at step " + std::to_string(run.step) +
            "; the checkpoint in " + run.out.string() + " holds every step taken. Continue with: histotrain train "
            "--resume " + run.out.string());
    return {nullptr, run.stopped_by};
  }
  const nlohmann::json pipeline_report = pipeline_json(run);  // a collective: every rank takes part
  if (!run.is_main()) return {};
  nlohmann::json summary = {{"arch", c.arch},
                            {"classes", run.data.classes},
                            {"image_size", c.image_size},
                            {"epochs", epochs_done},
                            {"steps", run.step},
                            {"train_images", run.split.train.size()},
                            {"val_images", run.split.val.size()},
                            {"split", c.data_split},
                            {"groups", run.data.groups_origin},
                            {"split_audit", run.split_audit},
                            {"skipped_images", run.data.cache->failed()},
                            {"train_s", train_seconds},
                            {"train_s_covers", "training steps: batch assembly, augmentation, forward, backward, "
                                               "optimizer; not decoding, validation or checkpoints"},
                            {"best_val_acc", run.best_acc},
                            {"target_acc", c.target_acc},
                            {"time_to_target_s", run.time_to_target >= 0 ? nlohmann::json(run.time_to_target) : nullptr},
                            {"time_to_target_s_covers", "train_s at the end of the first epoch whose validation "
                                                        "accuracy reached target_acc"},
                            {"val", run.last_val},
                            {"threads", at::get_num_threads()},
                            {"peak_rss_mib", peak_rss_mib()},
                            {"step_held_peak_mib", run.step_held_peak_bytes >= 0
                                                       ? nlohmann::json(run.step_held_peak_bytes / (1 << 20))
                                                       : nullptr},
                            {"step_held_peak_mib_covers", "the most memory a step held beyond what was held before "
                                                          "it, between its passes (activations kept for backward, "
                                                          "gradients), by the allocator's count; CPU only"},
                            {"world_size", run.world_size()},
                            {"batch_per_rank", c.batch_size},
                            {"global_batch", run.global_batch()},
                            {"peak_lr", run.peak_lr},
                            {"pipeline", pipeline_report},
                            {"ema", c.ema},
                            {"tta", c.tta},
                            {"cuda_graph", run.graph != nullptr},
                            {"graph_capture_s", run.graph_capture_seconds},
                            {"backend", run.dp->backend()},
                            {"launcher", run.dp->world().launcher},
                            {"step_times_ms", step_times_json(*run.dp)},
                            {"step_times_ms_covers", "rank 0's host time per step: backward; all-reduce from "
                                                     "the first bucket's start to the last one's end; exposed: the "
                                                     "part of it after backward returned; overlapped: the rest"},
                            {"device", run.device.str()},
                            {"torch_version", compat::torch_version()},
                            {"allocator", allocator_name()},
                            {"precision_choice", run.precision_choice},
                            {"system", system_info()},
                            {"config", to_json(c)}};
  write_file_atomically(run.out / "summary.json", json_text(summary, 2) + "\n");
  return {summary, 0};
}

}  // namespace histotrain
