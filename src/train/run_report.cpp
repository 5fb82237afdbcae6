// What a run reports: the start line, checkpoint metadata, the pipeline and step-time reports.
#include <torch/torch.h>

#include "core/compat.h"
#include "train/run.h"
#include "util/memory.h"

namespace histotrain {

// Per stage: the share of its step time spent blocked in receives (the bubble, plus transfers),
// next to the fill-drain schedule's (K - 1) / (M + K - 1).
nlohmann::json pipeline_json(Run& run) {
  if (run.device_stages)
    return {{"stages", run.config.pipeline_stages},
            {"micro_batches", run.config.micro_batches},
            {"schedule", run.config.pipeline_schedule},
            {"bounds", run.device_stages->bounds},
            {"devices", run.config.devices}};
  if (!run.pipeline) return nullptr;
  const int stages = run.config.pipeline_stages, m = run.config.micro_batches;
  auto waiting = torch::zeros({stages}, torch::kFloat64), seconds = torch::zeros({stages}, torch::kFloat64),
       rss = torch::zeros({stages}, torch::kFloat64), held = torch::zeros({stages}, torch::kFloat64);
  waiting[run.pipeline->stage()] = run.pipeline_waiting;
  seconds[run.pipeline->stage()] = run.pipeline_seconds;
  rss[run.pipeline->stage()] = peak_rss_mib();
  held[run.pipeline->stage()] = run.step_held_peak_bytes / (1 << 20);
  for (auto* t : {&waiting, &seconds, &rss, &held}) run.dp->communicator()->all_reduce_sum(*t);
  const StagePlan& plan = run.pipeline->plan();
  const int v = plan.virtual_stages();
  nlohmann::json per_stage = nlohmann::json::array();
  for (int s = 0; s < stages; ++s) {
    const std::vector<int> chunks = plan.chunks_of(s);
    nlohmann::json units = nlohmann::json::array();
    for (int c : chunks) units.push_back(run.model->unit_name(plan.first(c)) + ".." + run.model->unit_name(plan.end(c) - 1));
    per_stage.push_back({{"stage", s},
                         {"first_unit", run.model->unit_name(plan.first(chunks.front()))},
                         {"last_unit", run.model->unit_name(plan.end(chunks.back()) - 1)},
                         {"chunks", units},
                         {"waiting_fraction", waiting[s].item<double>() / std::max(1e-9, seconds[s].item<double>())},
                         {"estimated_idle_fraction",
                          run.pipeline_estimate ? nlohmann::json(run.pipeline_estimate->idle.at(s)) : nullptr},
                         {"estimated_receiving_s",
                          run.pipeline_estimate ? nlohmann::json(run.pipeline_estimate->receiving.at(s)) : nullptr},
                         {"computing_s", (seconds[s].item<double>() - waiting[s].item<double>()) /
                                             std::max<int64_t>(1, run.pipeline_steps)},
                         {"estimated_computing_s",
                          run.pipeline_estimate ? nlohmann::json(run.pipeline_estimate->computing.at(s)) : nullptr},
                         {"peak_rss_mib", rss[s].item<double>()},
                         {"step_held_peak_mib", held[s].item<double>() >= 0 ? nlohmann::json(held[s].item<double>()) : nullptr}});
  }
  return {{"stages", stages},
          {"micro_batches", m},
          {"schedule", run.config.pipeline_schedule},
          {"virtual_stages", v},
          {"bounds", plan.bounds},
          {"bubble_theoretical", static_cast<double>(stages - 1) / (v * m + stages - 1)},
          {"bubble_theoretical_covers", "(K-1)/(V M+K-1): the fill-drain schedule's idle share with V chunks per "
                                        "stage, for M >= K, and 1F1B's with V = 1 or M a multiple of K; with "
                                        "fewer micro-batches than stages and V > 1 the chunks wait for each other "
                                        "longer"},
          {"per_stage", per_stage},
          {"estimated_step_s", run.pipeline_estimate ? nlohmann::json(run.pipeline_estimate->seconds) : nullptr},
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

std::string start_line(const Run& run) {
  const TrainConfig& c = run.config;
  std::string line = "training " + c.arch + " on " + run.device.str() +
                     (run.precision == Precision::fp32 ? "" : ", " + c.amp + " autocast") +
                     (c.channels_last ? ", channels-last" : "") + " with " + std::to_string(at::get_num_threads()) +
                     " threads" + (run.world_size() > 1 ? " per rank" : "") + ": " + std::to_string(c.epochs) +
                     " epochs of " + std::to_string(run.steps_per_epoch) + " steps, ";
  if (run.data_ranks() > 1)
    line += "batch " + std::to_string(c.batch_size) + " per rank x " + std::to_string(run.data_ranks()) +
            " ranks = global batch " + std::to_string(run.global_batch()) + ", ";
  else
    line += "batch " + std::to_string(c.batch_size) + ", ";
  line += std::to_string(c.image_size) + " px, peak lr " + std::to_string(run.peak_lr);
  if (run.data_ranks() > 1 && c.lr_scaling == "linear")
    line += " (" + std::to_string(c.lr) + " x " + std::to_string(run.data_ranks()) + " ranks, linear scaling)";
  return line;
}

nlohmann::json checkpoint_meta(const Run& run, int64_t epochs_done, double train_seconds, const EpochProgress& progress) {
  nlohmann::json meta = {{"format", 1},
          {"arch", run.config.arch},
          {"classes", run.data.classes},
          {"image_size", run.config.image_size},
          {"epoch", epochs_done},
          {"step", run.step},
          {"train_seconds", train_seconds},
          {"best_val_acc", run.best_acc},
          {"world_size", run.world_size()},
          {"metrics", run.last_val},
          {"config", to_json(run.config)},
          {"torch_version", compat::torch_version()}};
  if (progress.steps > 0) meta["epoch_progress"] = progress.to_json();
  return meta;
}

}  // namespace histotrain
