// What a run reports: the start line, checkpoint metadata, the pipeline and step-time reports.
#include <torch/torch.h>

#include "core/calibration.h"
#include "core/checkpoint.h"
#include "core/compat.h"
#include "core/evaluation_report.h"
#include "model/conv_weight_grad.h"
#include "train/system_info.h"
#include "util/allocator.h"
#include "train/run.h"
#include "util/memory.h"

namespace histotrain {

// Per stage: the share of its step time spent blocked in receives (the bubble, plus transfers),
// next to the fill-drain schedule's (K - 1) / (M + K - 1).
namespace {

// Stage s's part of the pipeline report; `sums`: every stage's waiting and computing seconds,
// peak RSS and held bytes, indexed by stage.
nlohmann::json stage_json(const StepEngine& engine, const ResNet& model, int s, const torch::Tensor& waiting,
                          const torch::Tensor& seconds, const torch::Tensor& rss, const torch::Tensor& held,
                          int64_t steps) {
  const StagePlan& plan = engine.pipeline->plan();
  const std::optional<StepEstimate>& estimate = engine.pipeline_estimate;
  const std::vector<int> chunks = plan.chunks_of(s);
  nlohmann::json units = nlohmann::json::array();
  for (int c : chunks) units.push_back(model->unit_name(plan.first(c)) + ".." + model->unit_name(plan.end(c) - 1));
  const double wait = waiting[s].item<double>(), total = seconds[s].item<double>(), held_mib = held[s].item<double>();
  return {{"stage", s},
          {"first_unit", model->unit_name(plan.first(chunks.front()))},
          {"last_unit", model->unit_name(plan.end(chunks.back()) - 1)},
          {"chunks", units},
          {"waiting_fraction", wait / std::max(1e-9, total)},
          {"estimated_idle_fraction", estimate ? nlohmann::json(estimate->idle.at(s)) : nullptr},
          {"estimated_receiving_s", estimate ? nlohmann::json(estimate->receiving.at(s)) : nullptr},
          {"computing_s", (total - wait) / std::max<int64_t>(1, steps)},
          {"estimated_computing_s", estimate ? nlohmann::json(estimate->computing.at(s)) : nullptr},
          {"peak_rss_mib", rss[s].item<double>()},
          {"step_held_peak_mib", held_mib >= 0 ? nlohmann::json(held_mib) : nullptr}};
}

}  // namespace

nlohmann::json pipeline_json(const ParallelConfig& c, const StepEngine& engine, const ResNet& model,
                             DataParallel& dp, const RunProgress& progress) {
  if (engine.device_stages)
    return {{"stages", c.pipeline_stages},
            {"micro_batches", c.micro_batches},
            {"schedule", spelling(c.pipeline_schedule)},
            {"bounds", engine.device_stages->bounds},
            {"devices", c.devices.text()}};
  if (!engine.pipeline) return nullptr;
  const int stages = c.pipeline_stages, m = c.micro_batches;
  auto waiting = torch::zeros({stages}, torch::kFloat64), seconds = torch::zeros({stages}, torch::kFloat64),
       rss = torch::zeros({stages}, torch::kFloat64), held = torch::zeros({stages}, torch::kFloat64);
  waiting[engine.pipeline->stage()] = progress.pipeline_waiting;
  seconds[engine.pipeline->stage()] = progress.pipeline_seconds;
  rss[engine.pipeline->stage()] = peak_rss_mib();
  held[engine.pipeline->stage()] = progress.step_held_peak_bytes / (1 << 20);
  for (auto* t : {&waiting, &seconds, &rss, &held}) dp.communicator()->all_reduce_sum(*t);
  const StagePlan& plan = engine.pipeline->plan();
  const int v = plan.virtual_stages();
  nlohmann::json per_stage = nlohmann::json::array();
  for (int s = 0; s < stages; ++s)
    per_stage.push_back(stage_json(engine, model, s, waiting, seconds, rss, held, progress.pipeline_steps));
  return {{"stages", stages},
          {"micro_batches", m},
          {"schedule", spelling(c.pipeline_schedule)},
          {"virtual_stages", v},
          {"bounds", plan.bounds},
          {"bubble_theoretical", static_cast<double>(stages - 1) / (v * m + stages - 1)},
          {"bubble_theoretical_covers", "(K-1)/(V M+K-1): the fill-drain schedule's idle share with V chunks per "
                                        "stage, for M >= K, and 1F1B's with V = 1 or M a multiple of K; with "
                                        "fewer micro-batches than stages and V > 1 the chunks wait for each other "
                                        "longer"},
          {"per_stage", per_stage},
          {"estimated_step_s",
           engine.pipeline_estimate ? nlohmann::json(engine.pipeline_estimate->seconds) : nullptr},
          {"estimated_covers", "the schedule replayed with each unit's forward, backward and update time and each "
                               "cut's one-way transfer time (a ping-pong between the ranks), measured at the start; "
                               "estimated_receiving_s: a step's messages to the stage, in transfer; null with --split"},
          {"step_held_peak_mib_covers", "the most memory a step held beyond what was held before it (activations "
                                        "kept for backward, gradients, tensors in flight), by the allocator's "
                                        "count between the schedule's ops; CPU stages only"},
          {"computing_s_covers", "per step, the stage's forwards and backwards (its pipeline step less the time "
                                 "blocked in receives; no optimizer update), against the estimate's from the "
                                 "unit costs measured at the start"},
          {"waiting_fraction_covers", "share of the stage's step time spent blocked receiving activations or "
                                      "gradients: the pipeline bubble plus transfer time"}};
}

nlohmann::json step_times_json(const DataParallel& dp) {
  const auto& t = dp.step_times();
  const double per_step_ms = t.steps > 0 ? 1000.0 / static_cast<double>(t.steps) : 0;
  return {{"backward", t.backward_s * per_step_ms},
          {"allreduce", t.allreduce_s * per_step_ms},
          {"exposed", t.exposed_s * per_step_ms},
          {"overlapped", std::max(0.0, t.allreduce_s - t.exposed_s) * per_step_ms}};
}

nlohmann::json rank_step_times_json(DataParallel& dp) {
  if (!dp.reducer()) return nullptr;  // the same on every rank: one rank, or pipeline stages
  const auto& t = dp.step_times();
  const int world = dp.world_size();
  // Row r: rank r's figures (the others' rows zero here), summed over the ranks: an exact gather.
  torch::Tensor rows = torch::zeros({world, 4}, torch::kFloat64);
  const double per_step_ms = t.steps > 0 ? 1000.0 / static_cast<double>(t.steps) : 0;
  rows[dp.rank()][0] = t.backward_s * per_step_ms;
  rows[dp.rank()][1] = t.exposed_s * per_step_ms;
  rows[dp.rank()][2] = t.compression_s * per_step_ms;
  rows[dp.rank()][3] = t.compression_during_backward_s * per_step_ms;
  dp.communicator()->all_reduce_sum(rows);
  nlohmann::json ranks = nlohmann::json::array();
  for (int r = 0; r < world; ++r)
    ranks.push_back({{"rank", r},
                     {"backward", rows[r][0].item<double>()},
                     {"after_backward", rows[r][1].item<double>()},
                     {"compression", rows[r][2].item<double>()},
                     {"compression_during_backward", rows[r][3].item<double>()}});
  return ranks;
}

// What the scaling model (distributed/scaling_model.h) needs from a data-parallel run: what each step
// sent, when each bucket could leave, and the compression's own time; null without a reducer.
nlohmann::json reducer_profile_json(const DataParallel& dp) {
  const GradientReducer* reducer = dp.reducer();
  const auto& t = dp.step_times();
  if (!reducer || t.steps == 0) return nullptr;
  const double steps = static_cast<double>(t.steps);
  const GradCompression& c = reducer->compression();
  const bool sixteen_bit = c.kind == CompressionKind::fp16 || c.kind == CompressionKind::bf16;
  nlohmann::json buckets = nlohmann::json::array();
  for (size_t k = 0; k < reducer->buckets(); ++k)
    buckets.push_back({{"values", reducer->bucket_values(k)},
                       {"bytes_per_value", sixteen_bit ? 2 : 4},
                       {"ready_share", k < t.bucket_ready_share.size() ? t.bucket_ready_share[k] / steps : 1.0}});
  nlohmann::json power_sgd = nullptr;
  if (const PowerSgd* p = reducer->power_sgd())
    power_sgd = {{"groups", p->groups()},
                 {"p_values", p->p_values()},
                 {"q_values", p->q_values()},
                 {"uncompressed_values", p->uncompressed_values()},
                 {"start_step", c.start_step},
                 {"compressed_steps", std::max<int64_t>(0, reducer->steps() - c.start_step)}};
  return {{"backend", dp.backend()},
          {"world_size", dp.world_size()},
          {"grad_compression", c.name()},
          {"buckets", buckets},
          {"powersgd", power_sgd},
          {"backward_ms", 1000 * t.backward_s / steps},
          {"allreduce_ms", 1000 * t.allreduce_s / steps},
          {"exposed_ms", 1000 * t.exposed_s / steps},
          {"compression_ms", 1000 * t.compression_s / steps},
          {"compression_during_backward_ms", 1000 * t.compression_during_backward_s / steps}};
}

std::string start_line(const TrainConfig& c, const RunWorld& world, const StepPlan& plan, Precision precision) {
  std::string line = "training " + c.model.arch.name + " on " + world.device.str() +
                     (precision == Precision::fp32 ? "" : ", " + precision_name(precision) + " autocast") +
                     (c.precision.channels_last ? ", channels-last" : "") + " with " +
                     std::to_string(at::get_num_threads()) + " threads" + (world.world_size() > 1 ? " per rank" : "") +
                     ": " + std::to_string(c.optim.epochs) + " epochs of " + std::to_string(plan.steps_per_epoch) +
                     " steps, ";
  std::string batch = "batch " + std::to_string(c.optim.batch_size);
  if (c.optim.accumulate > 1)
    batch += " x " + std::to_string(c.optim.accumulate) + " accumulated = " + std::to_string(plan.update_batch);
  if (plan.data_ranks > 1)
    line += batch + " per rank x " + std::to_string(plan.data_ranks) + " ranks = global batch " +
            std::to_string(plan.global_batch) + ", ";
  else
    line += batch + " per step, ";
  line += std::to_string(c.data.image_size) + " px, peak lr " + std::to_string(plan.peak_lr);
  if (plan.data_ranks > 1 && c.optim.lr_scaling == LrScaling::linear)
    line += " (" + std::to_string(c.optim.lr) + " x " + std::to_string(plan.data_ranks) + " ranks, linear scaling)";
  return line;
}

std::string epoch_label(const TrainConfig& c, const StepPlan& plan, int64_t epoch_number) {
  return "epoch " + std::to_string(epoch_number) + (plan.budget.on() ? "" : "/" + std::to_string(c.optim.epochs));
}

std::string budget_line(const StepPlan& plan, const RunProgress& progress, Clock::time_point started) {
  char text[320];
  std::snprintf(text, sizeof text,
                "time budget %.1f s: %.1f s of training in %lld steps (%s, %.2f epochs); warm-up until %.1f s; the "
                "whole command took %.1f s (start-up, decoding, validation and checkpoints included)",
                plan.budget.seconds, progress.train_seconds, static_cast<long long>(progress.step),
                progress.budget_spent ? "spent" : "not spent: the run stopped first",
                static_cast<double>(progress.step) / std::max<int64_t>(1, plan.steps_per_epoch),
                std::max(0.0, progress.warmup_end_seconds), seconds_since(started));
  return text;
}

std::string conv_grad_line() {
  const ConvTuningStats s = conv_tuning_stats();
  char text[200];
  std::snprintf(text, sizeof text,
                "convolution weight gradients: %lld of %lld shapes by one GEMM (faster here), the rest by LibTorch's "
                "kernel; timing both took %.2f s of the first steps",
                static_cast<long long>(s.gemm_shapes), static_cast<long long>(s.gemm_shapes + s.native_shapes),
                s.tuning_seconds);
  return text;
}

nlohmann::json conv_grad_json(const ResNet& model) {
  if (!model->tuned_conv_weight_grads) return {{"tuned", false}};
  const ConvTuningStats s = conv_tuning_stats();
  return {{"tuned", true},
          {"gemm_shapes", s.gemm_shapes},
          {"native_shapes", s.native_shapes},
          {"tuning_s", s.tuning_seconds},
          {"tuning_s_covers", "timing both ways at each shape's first backward, inside train_s"}};
}

nlohmann::json epoch_record(const GradScaler& scaler, const RunProgress& progress, const EpochStats& stats) {
  nlohmann::json record = {{"epoch", progress.epochs_done},
                           {"step", progress.step},
                           {"lr", progress.last_lr},
                           {"train_loss", stats.loss},
                           {"train_acc", stats.accuracy},
                           {"train_images_per_s", stats.images / std::max(1e-9, stats.seconds)},
                           {"epoch_train_s", stats.seconds},
                           {"train_s", progress.train_seconds}};
  if (!stats.complete) record["epoch_steps"] = stats.progress.steps;  // stopped inside the epoch (--max-steps)
  if (scaler.enabled()) {
    record["loss_scale"] = scaler.scale();
    record["skipped_steps"] = stats.skipped_steps;
  }
  return record;
}

std::string epoch_line(const TrainConfig& c, const StepPlan& plan, const RunProgress& progress,
                       const EpochStats& stats) {
  char text[160];
  std::snprintf(text, sizeof text, ": train loss %.3f acc %.3f, %.1f img/s", stats.loss, stats.accuracy,
                stats.images / std::max(1e-9, stats.seconds));
  return epoch_label(c, plan, progress.epochs_done) + text;
}

namespace {

// The validation split's metrics from its probabilities, with a temperature fitted on it (saved
// with the checkpoint for eval and predict) and intervals by bootstrap over its source groups.
nlohmann::json probability_report(const JobConfig& job, const RunData& data, const EvalResult& val) {
  std::vector<int64_t> labels;
  std::vector<std::string> groups;
  for (const int64_t item : data.split.val) {
    labels.push_back(data.tiles.labels[item]);
    groups.push_back(data.tiles.groups[item]);
  }
  ReportOptions options;
  options.temperature = fit_temperature(val.view_logits, torch::tensor(labels, torch::kLong));
  options.temperature_from = "fitted on this validation split: its ece_after here is optimistic, eval on other "
                             "images measures it";
  options.bootstrap = {job.bootstrap, job.seed};
  return evaluation_report(val, labels, groups, data.tiles.classes, options);
}

}  // namespace

nlohmann::json report_validation(const JobConfig& job, const RunData& data, bool main_rank, const EvalResult& val,
                                 nlohmann::json& record, std::string& line) {
  const bool tta = job.tta;
  const double accuracy = val.confusion.accuracy();
  record["val_loss"] = val.loss;
  record["val_acc"] = accuracy;
  record["val_macro_f1"] = val.confusion.macro_f1();
  if (tta) record["val_acc_single_view"] = val.single_view.accuracy();
  record["val_s"] = val.seconds;
  char text[160];
  std::snprintf(text, sizeof text, "; val loss %.3f acc %.4f macro-F1 %.4f", val.loss, accuracy, val.confusion.macro_f1());
  line += text;
  if (tta) {
    std::snprintf(text, sizeof text, " (with flips/rotations; %.4f without)", val.single_view.accuracy());
    line += text;
  }
  nlohmann::json report = val.confusion.to_json(data.tiles.classes);
  if (main_rank) {  // the other ranks save nothing: they skip the bootstrap's work
    report = probability_report(job, data, val);
    record["val_balanced_acc"] = report["balanced_accuracy"];
    record["val_macro_auc"] = report["macro_auc"];
    record["val_log_loss"] = report["log_loss"];
    record["val_ece"] = report["ece"];
    record["val_temperature"] = report["calibration"]["temperature"];
    line += "; " + evaluation_line(report);
    if (report.contains("by_group")) {
      const auto& g = report["by_group"];
      record["val_group_acc"] = g["accuracy"];
      record["val_group_balanced_acc"] = g["balanced_accuracy"];
      std::snprintf(text, sizeof text, "; per group acc %.4f over %lld cases", g["accuracy"].get<double>(),
                    static_cast<long long>(g["units"].get<int64_t>()));
      line += text;
    }
  }
  report["loss"] = val.loss;
  if (tta) report["accuracy_single_view"] = val.single_view.accuracy();
  return report;
}

nlohmann::json kept_weights_json(KeptWeights keep, const RunProgress& progress) {
  const bool best = keep == KeptWeights::best;
  nlohmann::json weights = {{"kept", spelling(keep)},
                            {"epoch", progress.kept_epoch},
                            {"step", progress.kept_step},
                            {"val", progress.kept_val}};
  if (best)
    weights["note"] = "the epoch with the best validation accuracy: its validation figures are optimistic (they "
                      "chose it); evaluate on other images";
  return weights;
}

nlohmann::json checkpoint_meta(const Run& run, const RunProgress& progress, int64_t epochs_done, double train_seconds,
                               const EpochProgress& epoch_progress) {
  nlohmann::json meta = {{"format", 1},
          {"arch", run.config.model.arch.name},
          {"classes", run.data.tiles.classes},
          {"image_size", run.config.data.image_size},
          {"epoch", epochs_done},
          {"step", progress.step},
          {"train_seconds", train_seconds},
          {"best_val_acc", progress.best_acc},
          {"world_size", run.world_size()},
          {"metrics", progress.last_val},
          {"config", to_json(run.config)},
          {"torch_version", compat::torch_version()}};
  if (epoch_progress.steps > 0) meta["epoch_progress"] = epoch_progress.to_json();
  // The temperature of the weights kept: fitted on their own validation.
  const bool best = run.config.job.keep == KeptWeights::best;
  const auto calibration = progress.kept_val.find("calibration");
  if (calibration != progress.kept_val.end() && calibration->value("from", "none") != "none")
    meta["calibration"] = {{"temperature", (*calibration)["temperature"]}, {"method", "temperature"},
                           {"fitted_on", best ? "the validation split, at the validation of the kept weights"
                                              : "the validation split, at its last validation"}};
  meta["weights"] = kept_weights_json(run.config.job.keep, progress);
  if (progress.warmup_end_seconds >= 0) meta["warmup_end_s"] = progress.warmup_end_seconds;
  meta["normalization"] = normalization_json(run.data.normalization);
  if (run.data.stain.method != StainMethod::none) meta["stain"] = to_json(run.data.stain);
  if (run.data.input_mpp > 0) meta["input_mpp"] = run.data.input_mpp;
  if (!run.init_report.is_null()) meta["init"] = run.init_report;
  return meta;
}

nlohmann::json run_summary(const Run& run, const RunProgress& progress, const nlohmann::json& pipeline_report,
                           const nlohmann::json& rank_step_times) {
  const TrainConfig& c = run.config;
  return {{"arch", c.model.arch.name},
          {"classes", run.data.tiles.classes},
          {"image_size", c.data.image_size},
          {"epochs", progress.epochs_done},
          {"steps", progress.step},
          {"train_images", run.data.split.train.size()},
          {"val_images", run.data.split.val.size()},
          {"split", spelling(c.data.split)},
          {"groups", run.data.tiles.groups_origin},
          {"split_audit", run.data.split_audit},
          {"skipped_images", run.data.tiles.cache->failed()},
          {"train_s", progress.train_seconds},
          {"train_s_covers", "training steps: batch assembly, augmentation, forward, backward, "
                             "optimizer; not decoding, validation or checkpoints"},
          {"best_val_acc", progress.best_acc},
          {"time_budget_s", run.plan.budget.on() ? nlohmann::json(run.plan.budget.seconds) : nullptr},
          {"time_budget_spent", run.plan.budget.on() ? nlohmann::json(progress.budget_spent) : nullptr},
          {"warmup_end_s", progress.warmup_end_seconds >= 0 ? nlohmann::json(progress.warmup_end_seconds) : nullptr},
          {"command_s", seconds_since(run.started)},
          {"command_s_covers", "the whole train command on rank 0: start-up, decoding or the tile cache, every "
                               "step, validation and checkpoints"},
          {"target_acc", c.job.target_acc},
          {"time_to_target_s", progress.time_to_target >= 0 ? nlohmann::json(progress.time_to_target) : nullptr},
          {"time_to_target_s_covers", "train_s at the end of the first epoch whose validation "
                                      "accuracy reached target_acc"},
          {"val", progress.kept_val},
          {"last_val", progress.last_val},
          {"weights", kept_weights_json(run.config.job.keep, progress)},
          {"threads", at::get_num_threads()},
          {"peak_rss_mib", peak_rss_mib()},
          {"step_held_peak_mib", progress.step_held_peak_bytes >= 0
                                     ? nlohmann::json(progress.step_held_peak_bytes / (1 << 20))
                                     : nullptr},
          {"step_held_peak_mib_covers", "the most memory a step held beyond what was held before "
                                        "it, between its passes (activations kept for backward, "
                                        "gradients), by the allocator's count; CPU only"},
          {"world_size", run.world_size()},
          {"batch_per_rank", c.optim.batch_size},
          {"accumulate", c.optim.accumulate},
          {"global_batch", run.plan.global_batch},
          {"peak_lr", run.plan.peak_lr},
          {"pipeline", pipeline_report},
          {"ema", c.optim.ema},
          {"tta", c.job.tta},
          {"cuda_graph", run.engine.graph != nullptr},
          {"conv_grad", conv_grad_json(run.trainee.model)},
          {"graph_capture_s", run.engine.graph_capture_seconds},
          {"backend", run.world.dp->backend()},
          {"launcher", run.world.dp->world().launcher},
          {"step_times_ms", step_times_json(*run.world.dp)},
          {"step_times_ms_covers", "rank 0's host time per step: backward; all-reduce from "
                                   "the first bucket's start to the last one's end; exposed: the "
                                   "part of it after backward returned; overlapped: the rest"},
          {"rank_step_times_ms", rank_step_times},
          {"rank_step_times_ms_covers", "every rank's own host time per step: backward; after_backward: the "
                                        "wait for the averaged gradients after its backward returned (the "
                                        "link, the compression's last part, and a slower rank: the rank that "
                                        "waits least is the one the others wait for); compression: its "
                                        "arithmetic, of which compression_during_backward in the gradient "
                                        "hooks (the rest is inside after_backward)"},
          {"reducer_profile", reducer_profile_json(*run.world.dp)},
          {"reducer_profile_covers", "rank 0's gradient traffic per step for the scaling model: each "
                                     "bucket's values and bytes per value, the share of backward passed "
                                     "when it started (mean over steps), PowerSGD's factor sizes; "
                                     "compression_ms: the compression's own arithmetic, of which "
                                     "compression_during_backward_ms while backward ran (the rest is in "
                                     "the time after backward)"},
          {"device", run.world.device.str()},
          {"torch_version", compat::torch_version()},
          {"allocator", allocator_name()},
          {"precision_choice", run.precision_choice},
          {"init", run.init_report},
          {"normalization", normalization_json(run.data.normalization)},
          {"stain", to_json(run.data.stain)},
          {"system", system_info()},
          {"config", to_json(c)}};
}

}  // namespace histotrain
