// The training loop: epochs of steps, then validation, the epoch's record and a checkpoint.
// Setting the run up is run_setup.cpp's; what it reports is run_report.cpp's.
#include "train/trainer.h"

#include <cstring>
#include <limits>

#include "core/checkpoint.h"
#include "core/evaluate.h"
#include "core/loss.h"
#include "core/schedule.h"
#include "data/batches.h"
#include "pipeline/local_pipeline.h"
#include "train/epoch_batches.h"
#include "train/optimizer.h"
#include "train/recipes.h"
#include "train/run_checkpoints.h"
#include "train/run.h"
#include "train/train_step.h"
#include "util/allocator.h"
#include "util/json_file.h"
#include "util/json_text.h"
#include "util/progress.h"
#include "util/stop_signal.h"

namespace histotrain {

namespace {

EpochSums start_sums(const RunWorld& world, StepEngine& engine, const EpochProgress& before) {
  EpochSums sums;
  sums.carried = !engine.use_graph && world.is_main() ? before.loss_sum : 0;  // the graph keeps its own sum
  sums.before = before;
  if (!engine.use_graph) sums.before.loss_sum = 0;  // in `loss` already, on the main rank
  const auto on_device = torch::TensorOptions().device(world.device);
  sums.loss = torch::full({}, sums.carried, on_device.dtype(torch::kFloat64));
  sums.correct = torch::zeros({}, on_device.dtype(torch::kLong));
  if (engine.graph) engine.graph->reset_sums();
  return sums;
}

// Reads the loss back: the only host synchronisation of a step, every tenth step.
void show_progress(Progress& bar, int64_t steps_done, const StepPlan& plan, const EpochSums& sums) {
  char extra[64];
  std::snprintf(extra, sizeof extra, "loss %.3f", (sums.loss.item<double>() - sums.carried) / steps_done);
  bar.update(steps_done * plan.global_batch, extra);
}

// The learning rate of the next step: by step, or with --time-budget by the budget's clock.
double next_lr(const StepPlan& plan, RunProgress& p, const LrSchedule& schedule) {
  if (!plan.budget.on()) return schedule.at(p.step);
  return plan.budget.lr(schedule, p.step, p.budget_clock, p.warmup_end_seconds);
}

// --time-budget: reads the training time after a step, `training_seconds` on this rank; rank 0's
// figure is everyone's (one scalar all-reduce), so replicas use the same rate and stop together.
void read_budget_clock(const RunWorld& world, const StepPlan& plan, RunProgress& p, double training_seconds) {
  if (!plan.budget.on()) return;
  p.budget_clock = world.world_size() > 1 ? world.dp->sum(world.is_main() ? training_seconds : 0.0) : training_seconds;
  p.budget_spent = plan.budget.spent(p.budget_clock);
}

// Whether to stop after this step for SIGINT/SIGTERM. Every rank stops at the same step: a signal
// that any rank received is agreed on by all (on GPUs every tenth step, as each check waits for
// the device).
bool stop_requested(const RunWorld& world, int64_t step_in_epoch) {
  if (world.world_size() == 1) return stop_signal() != 0;
  if (world.device.is_cuda() && (step_in_epoch + 1) % 10 != 0) return false;
  const int agreed = world.dp->agree_on_stop(stop_signal());
  if (agreed != 0) request_stop(agreed);
  return agreed != 0;
}

// The epoch so far, summed over ranks: the steps of it taken before a resume plus this
// process's. A collective: every rank calls it at the same step.
EpochProgress progress_over_ranks(const RunWorld& world, const EpochSums& sums, int64_t steps, double seconds) {
  EpochProgress p;
  p.steps = sums.before.steps + steps;
  p.loss_sum = sums.before.loss_sum + world.dp->sum(sums.loss.item<double>());
  p.correct = sums.before.correct + world.dp->sum(static_cast<double>(sums.correct.item<int64_t>()));
  p.seconds = sums.before.seconds + seconds;
  return p;
}

EpochStats epoch_stats(const StepPlan& plan, const RunProgress& p, const EpochProgress& progress, bool stopped,
                       int64_t skipped) {
  EpochStats stats;
  stats.budget_spent = p.budget_spent;
  stats.progress = progress;
  stats.complete = progress.steps == plan.steps_per_epoch;
  stats.stopped = stopped;
  stats.images = progress.steps * plan.global_batch;
  stats.skipped_steps = skipped;
  if (progress.steps > 0) {
    stats.loss = progress.loss_sum / static_cast<double>(progress.steps * plan.data_ranks);
    stats.accuracy = progress.correct / static_cast<double>(stats.images);
  }
  stats.seconds = progress.seconds;
  return stats;
}

// Ends a run stopped by a signal, once its checkpoint is written: no rank exits before rank 0
// has written it, as a launcher may stop the rest when one exits.
void stop_for_signal(const RunWorld& world, RunProgress& p) {
  p.stopped_by = stop_signal();
  world.dp->barrier();
}

// Trains the rest of epoch `epoch` (from step `before.steps` of it). Stops early at --max-steps
// or for a signal; writes a checkpoint every --checkpoint-steps steps.
EpochStats train_epoch(Run& run, RunProgress& p, const BatchMaker& maker, int64_t epoch, const LrSchedule& schedule,
                       const EpochProgress& before) {
  const TrainConfig& c = run.config;
  const auto start = Clock::now();
  const int64_t first = before.steps;
  const int64_t end = first + std::min(run.plan.steps_per_epoch - first, run.plan.stop_step - p.step);
  Progress bar(epoch_label(c, run.plan, epoch + 1), (end - first) * run.plan.global_batch, "img",
               c.job.quiet || !run.is_main());
  run.trainee.model->train();
  EpochSums sums = start_sums(run.world, run.engine, before);
  const EpochBatches batches(run.config, run.data, run.world, run.engine, maker, epoch);
  BatchStream stream(batches, first, end, c.data.prefetch);
  int64_t s = first, skipped = 0;
  bool stopped = false;
  while (s < end && !stopped && !p.budget_spent) {
    if (!take_step(run, p, stream.next(), next_lr(run.plan, p, schedule), sums)) ++skipped;
    ++s;
    read_budget_clock(run.world, run.plan, p, p.train_seconds + before.seconds + seconds_since(start));
    if (((s - first) % 10 == 0 || s == end) && !run.pipelined()) show_progress(bar, s - first, run.plan, sums);
    stopped = stop_requested(run.world, s - 1);
    if (!stopped && checkpoint_due(run.plan, c.job.checkpoint_steps, s))
      save_between_validations(run, p, epoch, progress_over_ranks(run.world, sums, s - first, seconds_since(start)));
  }
  stream.finish();
  const EpochStats stats =
      epoch_stats(run.plan, p, progress_over_ranks(run.world, sums, s - first, seconds_since(start)), stopped, skipped);
  if (run.pipelined()) bar.update((s - first) * run.plan.global_batch, "");
  bar.finish();
  return stats;
}

// Each rank evaluates its shard of the validation set with rank 0's BatchNorm statistics; the
// counts and loss sums are added over ranks before any ratio is taken, and every rank receives
// all the logits (for the probability metrics, in the order of run.data.split.val).
EvalResult validate_globally(Run& run, const BatchMaker& batches) {
  // Pipeline stages gathered the model already.
  if (!run.engine.pipeline) run.world.dp->broadcast_buffers(run.trainee.evaluated_model());
  const std::vector<int64_t> mine = run.world.dp->shard(run.data.split.val);
  EvalResult val = evaluate(run.trainee.evaluated_model(), batches, mine, run.data.class_count(),
                            run.config.optim.batch_size * 2, run.trainee.precision, run.config.job.tta);
  run.world.dp->sum(val.confusion);
  run.world.dp->sum(val.single_view);
  val.view_logits = run.world.dp->gather_shards(val.view_logits, static_cast<int64_t>(run.data.split.val.size()));
  val.loss =
      run.world.dp->sum(val.loss * static_cast<double>(mine.size())) / static_cast<double>(run.data.split.val.size());
  return val;
}

// An epoch's record as TensorBoard scalars: "train_loss" as "train/loss", "val_acc" as
// "val/acc", the rest under "run/"; the epoch and step are the event's own.
std::vector<std::pair<std::string, double>> tensorboard_scalars(const nlohmann::json& record) {
  std::vector<std::pair<std::string, double>> scalars;
  for (const auto& [key, value] : record.items()) {
    if (!value.is_number() || key == "epoch" || key == "step") continue;
    std::string tag = "run/" + key;
    for (const char* prefix : {"train_", "val_"})
      if (key.rfind(prefix, 0) == 0) tag = std::string(prefix, std::strlen(prefix) - 1) + "/" + key.substr(std::strlen(prefix));
    scalars.emplace_back(tag, value.get<double>());
  }
  return scalars;
}

// Validation (at milestones), the epoch's record and line, its checkpoint, after the steps of
// epoch `epoch`. False: the run stops here (a signal at the epoch's last step, the target reached).
bool end_epoch(Run& run, RunProgress& p, const BatchMaker& batches, int64_t epoch, const EpochStats& stats) {
  const TrainConfig& c = run.config;
  p.train_seconds += stats.seconds;
  p.epochs_done = epoch + 1;
  // --val-every: validation and checkpoint every N epochs, and always after the last one.
  const bool last =
      (!run.plan.budget.on() && p.epochs_done == c.optim.epochs) || p.step >= run.plan.stop_step || stats.budget_spent;
  const bool milestone = last || p.epochs_done % c.job.val_every == 0;
  if (run.engine.pipeline && milestone) run.engine.pipeline->gather(*run.trainee.optimizer);  // every rank: the whole model
  nlohmann::json record = epoch_record(*run.trainee.scaler, p, stats);
  std::string line = epoch_line(c, run.plan, p, stats);
  const double previous_best = p.best_acc;
  bool validated = false;
  if (!run.data.split.val.empty() && milestone) {
    const EvalResult val = validate_globally(run, batches);
    p.last_val = report_validation(c.job, run.data, run.is_main(), val, record, line);
    p.best_acc = std::max(p.best_acc, val.confusion.accuracy());
    validated = true;
    if (c.job.target_acc > 0 && val.confusion.accuracy() >= c.job.target_acc && p.time_to_target < 0)
      p.time_to_target = p.train_seconds;
  }
  run.log(line);
  if (run.is_main()) append_line(run.world.out / "metrics.jsonl", json_text(record));
  if (run.events) run.events->scalars(p.step, tensorboard_scalars(record));
  if (milestone) {
    // --max-steps inside an epoch keeps that epoch's progress: a resume finishes the epoch.
    if (!stats.complete) p.epochs_done = epoch;
    const bool new_weights = keep_weights(c.job.keep, p, p.epochs_done, validated ? &p.last_val : nullptr, previous_best);
    write_checkpoint(run, p, p.epochs_done, p.train_seconds, stats.complete ? EpochProgress{} : stats.progress,
                     new_weights);
  }
  if (stats.stopped && p.step < run.plan.stop_step) {  // a signal at the epoch's last step
    if (!milestone) save_between_validations(run, p, p.epochs_done, {});
    stop_for_signal(run.world, p);
    return false;
  }
  if (stats.budget_spent) return false;
  if (p.time_to_target < 0) return true;
  run.log("reached target accuracy " + std::to_string(c.job.target_acc) + " after " +
          format_duration(p.time_to_target) + " of training");
  return false;
}

// Epochs until the schedule or the time budget ends, --max-steps, the target accuracy or a signal.
void train_epochs(Run& run, RunProgress& p, const BatchMaker& batches, const LrSchedule& schedule) {
  p.epochs_done = p.start_epoch;
  read_budget_clock(run.world, run.plan, p, p.train_seconds + p.resumed_progress.seconds);  // a resumed run's clock goes on
  const int64_t epochs = run.plan.budget.on() ? std::numeric_limits<int64_t>::max() : run.config.optim.epochs;
  for (int64_t epoch = p.start_epoch; epoch < epochs && p.step < run.plan.stop_step && !p.budget_spent; ++epoch) {
    const EpochProgress before = epoch == p.start_epoch ? p.resumed_progress : EpochProgress{};
    const EpochStats stats = train_epoch(run, p, batches, epoch, schedule, before);
    if (stats.stopped && !stats.complete) {  // a signal: keep the work, skip the reports
      save_between_validations(run, p, epoch, stats.progress);
      stop_for_signal(run.world, p);
      return;
    }
    if (!end_epoch(run, p, batches, epoch, stats)) return;
  }
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
    saved = read_json_file(from / kRunConfigFile);
    saved["resume"] = "";
    std::fprintf(stderr, "note: %s has no checkpoint yet (the run stopped before its first one); it starts again "
                 "from step 0 with the flags it was given\n", from.string().c_str());
  }
  for (const auto& [key, value] : overrides.items()) saved[key] = value;
  // A cut by hand fits the stages it was made for: another --pipeline-stages drops it.
  if (overrides.contains("pipeline_stages") && !overrides.contains("stage_cut")) saved["stage_cut"] = "";
  if (!overrides.contains("out")) saved["out"] = from.string();
  return config_from_json(saved);
}

TrainOutcome train(const TrainConfig& config) {
  validate(config);
  const std::string recipe = recipe_line(config);  // as given: --amp auto, before it is decided
  Run run = set_up_run(config);
  RunProgress progress;
  if (!config.job.resume.empty()) restore(run, progress);
  // From here on Ctrl-C and SIGTERM stop the run at a step boundary, with a checkpoint. Once
  // rank 0 reports that training starts, every rank catches them (the barrier).
  catch_stop_signals();
  run.world.dp->barrier();
  run.world.dp->broadcast_model(run.trainee.model);  // every rank starts from rank 0's weights
  const ParallelConfig& parallel = run.config.parallel;
  run.world.dp->attach(run.trainee.model, *run.trainee.scaler, parallel.bucket_mb,
                 GradCompression(parallel.grad_compression, parallel.powersgd_start_step), run.config.job.seed);
  run.world.dp->restore_compression(run.resumed_reducer_state, run.resumed_world, progress.step);
  run.resumed_reducer_state.clear();
  const BatchMaker batches(run.data.tiles, run.world.device, run.trainee.format, run.data.normalization);
  const OptimConfig& o = run.config.optim;
  const LrSchedule schedule(o.schedule, run.plan.peak_lr, static_cast<int64_t>(o.warmup_epochs * run.plan.steps_per_epoch),
                            run.plan.schedule_steps);
  if (!recipe.empty()) run.log(recipe);
  run.log(start_line(run.config, run.world, run.plan, run.trainee.precision));
  if (run.config.job.tensorboard && run.is_main()) {
    run.events = std::make_unique<EventFileWriter>(run.world.out);
    run.log("TensorBoard scalars: " + run.events->path().string() + " (tensorboard --logdir " + run.world.out.string() + ")");
  }
  train_epochs(run, progress, batches, schedule);
  release_stop_signals();
  if (progress.stopped_by != 0) {
    run.log(std::string("stopped by ") + signal_name(progress.stopped_by) + " at step " +
            std::to_string(progress.step) + "; the checkpoint in " + run.world.out.string() +
            " holds every step taken. Continue with: histotrain train --resume " + run.world.out.string());
    return {nullptr, progress.stopped_by};
  }
  if (run.plan.budget.on()) run.log(budget_line(run.plan, progress, run.started));
  if (run.trainee.model->tuned_conv_weight_grads) run.log(conv_grad_line());
  // Collectives: every rank takes part.
  const nlohmann::json pipeline_report =
      pipeline_json(run.config.parallel, run.engine, run.trainee.model, *run.world.dp, progress);
  const nlohmann::json rank_step_times = rank_step_times_json(*run.world.dp);
  if (!run.is_main()) return {};
  const nlohmann::json summary = run_summary(run, progress, pipeline_report, rank_step_times);
  write_file_atomically(run.world.out / "summary.json", json_text(summary, 2) + "\n");
  // A run that finished keeps one copy of each file eval, predict and --resume need; one cut short
  // by --max-steps is unfinished and keeps the checkpoint before its last, as while training.
  const bool cut_short = run.plan.stop_step < run.plan.schedule_steps && progress.step >= run.plan.stop_step &&
                         !progress.budget_spent && progress.time_to_target < 0;
  if (!cut_short) finish_run_folder(run.world.out);
  return {summary, 0};
}

}  // namespace histotrain
