#include "train/trainer.h"

#include <chrono>
#include <optional>
#include <cstdio>

#include "compat.h"
#include "data/batches.h"
#include "data/dataset.h"
#include "data/groups.h"
#include "dist/data_parallel.h"
#include "model/resnet.h"
#include "pipeline/local_pipeline.h"
#include "pipeline/pipeline_stage.h"
#include "pipeline/stage_plan.h"
#include "train/amp.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/optimizer.h"
#include "train/runtime.h"
#include "train/schedule.h"
#include "util/errors.h"
#include "util/files.h"
#include "util/memory.h"
#include "util/progress.h"

namespace histotrain {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Everything a run needs, set up once.
struct Run {
  TrainConfig config;
  std::unique_ptr<DataParallel> dp;  // world of one for single-process training
  std::unique_ptr<PipelineStage> pipeline;  // --pipeline-stages > 1 over ranks: this rank's stage
  std::optional<StagePlan> device_stages;   // --pipeline-stages > 1 over --devices, in this process
  fs::path out;
  torch::Device device{torch::kCPU};
  TileDataset data;
  Split split;
  ResNet model{nullptr};
  std::unique_ptr<torch::optim::SGD> optimizer;
  Precision precision = Precision::fp32;
  std::unique_ptr<GradScaler> scaler;  // active for fp16 only
  torch::MemoryFormat format = torch::MemoryFormat::Contiguous;
  double peak_lr = 0;           // config.lr, scaled with the world size (lr_scaling)
  int64_t steps_per_epoch = 0;
  int64_t schedule_steps = 0;  // epochs x steps per epoch: what the LR schedule spans
  int64_t stop_step = 0;       // where training stops: schedule_steps, or earlier with --max-steps
  int64_t start_epoch = 0, step = 0;
  double previous_seconds = 0;  // training time before a resume
  double best_acc = 0;
  double time_to_target = -1;
  double pipeline_seconds = 0, pipeline_waiting = 0;  // this rank's pipeline steps, and its time blocked in receives
  nlohmann::json last_val;  // last validation report (kept across a resume)

  bool is_main() const { return !dp || dp->is_main(); }
  int world_size() const { return dp ? dp->world_size() : 1; }
  int data_ranks() const { return dp ? dp->data_ranks() : 1; }  // ranks that each take their own images
  int64_t global_batch() const { return int64_t{config.batch_size} * data_ranks(); }
  // Progress and reports come from rank 0 only.
  void log(const std::string& line) const {
    if (!is_main()) return;
    std::fprintf(stderr, "%s\n", line.c_str());
    std::fflush(stderr);
  }
};

Split make_split(const Run& run, const TileDataset& data, const TrainConfig& c) {
  if (c.groups.empty())
    run.log("note: no --groups file: each image is its own group. If the data holds near-copies of the same source "
        "(LC25000 does), validation accuracy will be optimistic.");
  return split_by_group(data.labels, data.groups, c.val_fraction, c.seed);
}

void load_data(Run& run) {
  const TrainConfig& c = run.config;
  DataOptions data_options;
  data_options.root = c.data;
  data_options.image_size = c.image_size;
  data_options.groups_csv = c.groups;
  data_options.cache_dir = c.cache_dir;
  data_options.workers = c.workers;
  data_options.quiet = c.quiet || !run.is_main();
  const auto data_start = Clock::now();
  run.dp->node_leaders_first([&] { run.data = load_dataset(data_options); });
  run.log(describe(run.data) + "\ndata ready in " + format_duration(seconds_since(data_start)));
  if (run.data.classes.size() < 2) throw Error("training needs at least 2 classes, found only '" + run.data.classes[0] + "'");
  run.split = make_split(run, run.data, c);
  run.log("split: " + std::to_string(run.split.train.size()) + " training, " + std::to_string(run.split.val.size()) +
      " validation images (" + (c.groups.empty() ? "per image" : "per group") + ", seed " + std::to_string(c.seed) + ")");
  if (c.target_acc > 0 && run.split.val.empty()) throw UsageError("--target-acc needs a validation split (--val-fraction > 0)");
}

void plan_steps(Run& run) {
  const TrainConfig& c = run.config;
  // Every rank takes the same number of steps: the epoch drops the remainder of a global batch.
  run.steps_per_epoch = static_cast<int64_t>(run.split.train.size()) / run.global_batch();
  if (run.steps_per_epoch == 0)
    throw Error("the training split holds " + std::to_string(run.split.train.size()) +
                " images, fewer than one global batch of " + std::to_string(run.global_batch()) +
                "; lower --batch-size or use fewer ranks");
  run.peak_lr = c.lr_scaling == "linear" ? c.lr * run.data_ranks() : c.lr;
  run.schedule_steps = run.steps_per_epoch * c.epochs;
  // --max-steps interrupts the run; it does not reshape the schedule, so a run stopped early and
  // resumed matches one that never stopped.
  run.stop_step = c.max_steps > 0 ? std::min(run.schedule_steps, c.max_steps) : run.schedule_steps;
}

void build_model(Run& run) {
  const TrainConfig& c = run.config;
  run.model = ResNet(c.arch, static_cast<int64_t>(run.data.classes.size()));
  run.model->to(run.device);
  if (c.channels_last) {
    to_channels_last(*run.model);
    run.format = torch::MemoryFormat::ChannelsLast;
  }
  run.optimizer = make_optimizer(run.model, c);
  run.scaler = std::make_unique<GradScaler>(run.precision == Precision::fp16);
}

// The stages: as --split says, else balanced on per-unit time per step, measured by every rank
// together (so the cores are as busy as during training); rank 0's plan is everyone's.
void cut_into_stages(Run& run) {
  const TrainConfig& c = run.config;
  Communicator* comm = run.dp->communicator();  // null for stages on devices in one process
  const int64_t units = run.model->unit_count();
  std::vector<double> costs;
  StagePlan plan;
  if (!c.split.empty()) {
    plan = parse_split(c.split, units, c.pipeline_stages);
  } else {
    costs = measure_unit_costs(c.arch, static_cast<int64_t>(run.data.classes.size()), c.batch_size / c.micro_batches,
                               c.micro_batches, c.image_size, run.device, run.format);
    auto mean = torch::tensor(costs, torch::kFloat64);
    if (comm) comm->all_reduce_sum(mean);
    const int ranks = comm ? comm->world_size() : 1;
    for (size_t u = 0; u < costs.size(); ++u) costs[u] = mean[static_cast<int64_t>(u)].item<double>() / ranks;
    auto bounds = torch::zeros({c.pipeline_stages + 1}, torch::kLong);
    if (run.is_main()) {
      plan = balance_stages(costs, c.pipeline_stages);
      for (int s = 0; s <= c.pipeline_stages; ++s) bounds[s] = plan.bounds[static_cast<size_t>(s)];
    }
    if (comm) comm->broadcast_from_rank0({bounds});  // one plan, even if the ranks' sums differ in the last bit
    plan.bounds.assign(bounds.data_ptr<int64_t>(), bounds.data_ptr<int64_t>() + bounds.numel());
  }
  run.log("pipeline: " + std::to_string(c.pipeline_stages) + " stages on " +
          (c.devices.empty() ? std::to_string(c.pipeline_stages) + " ranks" : "devices " + c.devices) + ", " +
          std::to_string(c.micro_batches) + " micro-batch(es) of " +
          std::to_string(c.batch_size / c.micro_batches) + " per batch (GPipe)" +
          (c.split.empty() ? ", balanced on measured time per step:" : ", split as given:") + "\n" +
          describe(plan, run.model, costs));
  if (comm) {
    run.pipeline = std::make_unique<PipelineStage>(run.model, plan, *comm, c.image_size, run.format);
  } else {
    place_stages(run.model, plan, parse_devices(c.devices));
    run.device_stages = plan;
  }
}

// Ranks started with different flags or data would meet in collectives of different sizes:
// compare what shapes the run first (paths, threads and output flags may differ per node).
void check_ranks_agree(Run& run) {
  nlohmann::json config = to_json(run.config);
  for (const char* local : {"data", "groups", "cache_dir", "threads", "workers", "out", "quiet", "device", "resume"})
    config.erase(local);
  run.dp->check_agreement("configuration", config.dump());
  run.dp->check_agreement("data", nlohmann::json{{"classes", run.data.classes},
                                                 {"images", run.data.size()},
                                                 {"training_images", run.split.train.size()},
                                                 {"validation_images", run.split.val.size()}}
                                      .dump());
}

void join_world(Run& run) {
  const TrainConfig& c = run.config;
  const WorldInfo world = world_from_environment();
  const bool pipeline = c.pipeline_stages > 1 && c.devices.empty();  // stages on ranks
  if (pipeline && world.world_size != c.pipeline_stages)
    throw UsageError("--pipeline-stages " + std::to_string(c.pipeline_stages) + " needs " +
                     std::to_string(c.pipeline_stages) + " ranks, one per stage (histotrain launch -n " +
                     std::to_string(c.pipeline_stages) + " -- train ...); this job has " +
                     std::to_string(world.world_size));
  if (!c.devices.empty() && world.distributed())
    throw UsageError("--devices keeps every stage in one process: start one process, not " +
                     std::to_string(world.world_size) + " ranks");
  run.device = c.devices.empty() ? device_for_rank(parse_device(c.device), world) : parse_devices(c.devices).front();
  run.dp = std::make_unique<DataParallel>(world, c.backend, run.device, std::chrono::seconds(c.dist_timeout),
                                          pipeline ? DataParallel::Role::stages : DataParallel::Role::replicas);
  if (world.distributed() && !pipeline)
    run.log("data parallel: " + std::to_string(world.world_size) + " ranks (" + world.launcher + "), backend " +
            run.dp->backend() + ", master " + world.master_addr + ":" + std::to_string(world.master_port));
}

void prepare(Run& run) {
  const TrainConfig& c = run.config;
  run.out = c.out;
  ensure_writable_dir(run.out);  // fail before minutes of decoding, not after
  if (c.resume.empty() && fs::exists(run.out / "checkpoint.json"))
    throw Error("'" + run.out.string() + "' already holds a run; continue it with --resume " + run.out.string() +
                " or choose another --out");
  join_world(run);
  set_threads(c.threads, run.dp->world().local_world_size);
  run.precision = parse_precision(c.amp);
  check_precision_supported(run.precision, run.device);
  compat::manual_seed(c.seed);
  load_data(run);
  check_ranks_agree(run);
  plan_steps(run);
  build_model(run);
  if (c.pipeline_stages > 1) cut_into_stages(run);  // after the optimizer: placing keeps the parameters
}

void restore(Run& run) {
  const fs::path from = run_folder(run.config.resume);
  const nlohmann::json meta = read_checkpoint_meta(from);
  if (meta.at("classes").get<std::vector<std::string>>() != run.data.classes)
    throw Error("cannot resume '" + from.string() + "': its classes differ from those found in " + run.config.data);

  run.start_epoch = meta.at("epoch").get<int64_t>();
  run.step = meta.at("step").get<int64_t>();
  load_training_state(from, run.model, *run.optimizer, *run.scaler, run.step);
  run.model->to(run.device);
  if (run.device_stages) place_stages(run.model, *run.device_stages, parse_devices(run.config.devices));
  if (run.config.channels_last) to_channels_last(*run.model);
  const int saved_world = meta.value("world_size", 1);
  if (saved_world != run.world_size()) {
    // Steps per epoch depend on the world size: continue at the start of the next epoch.
    run.step = run.start_epoch * run.steps_per_epoch;
    run.log("note: the run was saved with " + std::to_string(saved_world) + " rank(s) and continues with " +
            std::to_string(run.world_size()) + "; it resumes at the start of epoch " +
            std::to_string(run.start_epoch + 1) + " (step " + std::to_string(run.step) + ")");
  }
  run.last_val = meta.value("metrics", nlohmann::json());
  run.previous_seconds = meta.value("train_seconds", 0.0);
  run.best_acc = meta.value("best_val_acc", 0.0);
  run.log("resumed from " + from.string() + " after epoch " + std::to_string(run.start_epoch) + " (step " +
      std::to_string(run.step) + ")");
}

struct EpochStats {
  double loss = 0, accuracy = 0, seconds = 0;
  int64_t images = 0;
  int64_t skipped_steps = 0;  // fp16 steps skipped for inf/NaN gradients
};

EpochStats train_epoch(Run& run, const BatchMaker& batches, int64_t epoch, const LrSchedule& schedule) {
  const TrainConfig& c = run.config;
  const auto start = Clock::now();
  // This rank's disjoint shard of the epoch's shuffled order.
  const std::vector<int64_t> order =
      epoch_order(run.split.train, c.seed, epoch, /*shuffle=*/true, run.dp->data_rank(), run.data_ranks());
  // Augmentation randomness depends only on (seed, epoch, rank): a resumed run replays it exactly.
  std::mt19937_64 rng(c.seed * 7919 + static_cast<uint64_t>(epoch) + 17 + 1000003ull * static_cast<uint64_t>(run.dp->data_rank()));
  Augmentation augmentation;
  augmentation.dihedral = c.augment;
  augmentation.max_shift = c.augment ? static_cast<int>(c.max_shift * c.image_size) : 0;
  const auto loss_options = torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(c.label_smoothing);

  const int64_t steps = std::min(run.steps_per_epoch, run.stop_step - run.step);
  int64_t skipped = 0;
  Progress progress("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(c.epochs), steps * run.global_batch(),
                    "img", c.quiet || !run.is_main());
  run.model->train();
  // Running sums stay on the device and are read only for the progress line.
  torch::Tensor loss_sum = torch::zeros({}, torch::TensorOptions().device(run.device));
  torch::Tensor correct = torch::zeros({}, torch::TensorOptions().dtype(torch::kLong).device(run.device));
  for (int64_t s = 0; s < steps; ++s, ++run.step) {
    const int64_t* items = order.data() + s * c.batch_size;
    // Later pipeline stages never see the images: they need the labels only.
    const Batch batch = run.pipeline && run.pipeline->stage() > 0 ? batches.make_labels(items, c.batch_size)
                                                                   : batches.make(items, c.batch_size, &augmentation, &rng);
    set_learning_rate(*run.optimizer, schedule.at(run.step));
    clear_gradients(*run.optimizer);
    if (run.pipeline || run.device_stages) {
      const PipelineStepResult r =
          run.pipeline ? run.pipeline->step(batch, c.micro_batches, loss_options, run.precision, *run.scaler)
                       : local_pipeline_step(run.model, batch, c.micro_batches, loss_options, run.precision, *run.scaler);
      loss_sum += r.loss_sum / c.batch_size;  // non-zero on the last stage only
      correct += r.correct;
      run.pipeline_seconds += r.seconds;
      run.pipeline_waiting += r.waiting;
    } else {
      torch::Tensor logits;
      {
        AutocastScope autocast(run.precision, run.device);
        logits = run.model->forward(batch.images);
      }
      const torch::Tensor loss =
          torch::nn::functional::cross_entropy(logits.to(torch::kFloat32), batch.labels, loss_options);  // fp32 loss
      run.dp->backward(run.scaler->scale_loss(loss));  // and, with several ranks, the gradient all-reduce
      loss_sum += loss.detach();
      correct += (logits.argmax(1) == batch.labels).sum();
    }
    if (!run.scaler->step(*run.optimizer)) ++skipped;
    if (((s + 1) % 10 == 0 || s + 1 == steps) && !run.pipeline && !run.device_stages) {
      char extra[64];
      std::snprintf(extra, sizeof extra, "loss %.3f", loss_sum.item<double>() / (s + 1));
      progress.update((s + 1) * run.global_batch(), extra);
    }
  }
  EpochStats stats;
  stats.images = steps * run.global_batch();
  stats.skipped_steps = skipped;
  if (steps > 0) {  // over all ranks
    stats.loss = run.dp->sum(loss_sum.item<double>()) / (steps * run.data_ranks());
    stats.accuracy = run.dp->sum(static_cast<double>(correct.item<int64_t>())) / stats.images;
  }
  stats.seconds = seconds_since(start);
  if (run.pipeline || run.device_stages) progress.update(steps * run.global_batch(), "");
  progress.finish();
  return stats;
}

// Each rank evaluates its shard of the validation set with rank 0's BatchNorm statistics; the
// counts and loss sums are added over ranks before any ratio is taken.
EvalResult validate_globally(Run& run, const BatchMaker& batches) {
  if (!run.pipeline) run.dp->broadcast_buffers(run.model);  // pipeline stages gathered the model already
  const std::vector<int64_t> mine = run.dp->shard(run.split.val);
  EvalResult val = evaluate(run.model, batches, mine, static_cast<int64_t>(run.data.classes.size()),
                            run.config.batch_size * 2, run.precision);
  run.dp->sum(val.confusion);
  val.loss = run.dp->sum(val.loss * static_cast<double>(mine.size())) / static_cast<double>(run.split.val.size());
  return val;
}

// Per stage: the share of its step time spent blocked in receives (the bubble, plus transfers),
// next to the fill-drain schedule's (K - 1) / (M + K - 1).
nlohmann::json pipeline_json(Run& run) {
  if (run.device_stages)
    return {{"stages", run.config.pipeline_stages},
            {"micro_batches", run.config.micro_batches},
            {"bounds", run.device_stages->bounds},
            {"devices", run.config.devices}};
  if (!run.pipeline) return nullptr;
  const int stages = run.config.pipeline_stages, m = run.config.micro_batches;
  auto waiting = torch::zeros({stages}, torch::kFloat64), seconds = torch::zeros({stages}, torch::kFloat64),
       rss = torch::zeros({stages}, torch::kFloat64);
  waiting[run.pipeline->stage()] = run.pipeline_waiting;
  seconds[run.pipeline->stage()] = run.pipeline_seconds;
  rss[run.pipeline->stage()] = peak_rss_mib();
  for (auto* t : {&waiting, &seconds, &rss}) run.dp->communicator()->all_reduce_sum(*t);
  nlohmann::json per_stage = nlohmann::json::array();
  for (int s = 0; s < stages; ++s)
    per_stage.push_back({{"stage", s},
                         {"first_unit", run.model->unit_name(run.pipeline->plan().first(s))},
                         {"last_unit", run.model->unit_name(run.pipeline->plan().end(s) - 1)},
                         {"waiting_fraction", waiting[s].item<double>() / std::max(1e-9, seconds[s].item<double>())},
                         {"peak_rss_mib", rss[s].item<double>()}});
  return {{"stages", stages},
          {"micro_batches", m},
          {"bounds", run.pipeline->plan().bounds},
          {"bubble_theoretical", static_cast<double>(stages - 1) / (m + stages - 1)},
          {"per_stage", per_stage},
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

nlohmann::json checkpoint_meta(const Run& run, int64_t epochs_done, double train_seconds) {
  return {{"format", 1},
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
}

}  // namespace

TrainConfig resumed_config(const std::string& run, const nlohmann::json& overrides) {
  const fs::path from = run_folder(run);
  nlohmann::json saved = read_checkpoint_meta(from).at("config");
  for (const auto& [key, value] : overrides.items()) saved[key] = value;
  saved["resume"] = from.string();
  if (!overrides.contains("out")) saved["out"] = from.string();
  return config_from_json(saved);
}

nlohmann::json train(const TrainConfig& config) {
  validate(config);
  Run run;
  run.config = config;
  prepare(run);
  if (!config.resume.empty()) restore(run);
  run.dp->broadcast_model(run.model);  // every rank starts from rank 0's weights
  run.dp->attach(run.model, *run.scaler, run.config.bucket_mb);
  const TrainConfig& c = run.config;
  const BatchMaker batches(run.data, run.device, run.format);
  const LrSchedule schedule(c.schedule, run.peak_lr, static_cast<int64_t>(c.warmup_epochs * run.steps_per_epoch),
                            run.schedule_steps);
  run.log(start_line(run));

  double train_seconds = run.previous_seconds;
  int64_t epochs_done = run.start_epoch;
  for (int64_t epoch = run.start_epoch; epoch < c.epochs && run.step < run.stop_step; ++epoch) {
    const EpochStats stats = train_epoch(run, batches, epoch, schedule);
    train_seconds += stats.seconds;
    epochs_done = epoch + 1;
    if (run.pipeline) run.pipeline->gather(*run.optimizer);  // every rank: the whole model, for validation and the checkpoint
    nlohmann::json record = {{"epoch", epochs_done},
                             {"step", run.step},
                             {"lr", schedule.at(std::max<int64_t>(0, run.step - 1))},
                             {"train_loss", stats.loss},
                             {"train_acc", stats.accuracy},
                             {"train_images_per_s", stats.images / std::max(1e-9, stats.seconds)},
                             {"epoch_train_s", stats.seconds},
                             {"train_s", train_seconds}};
    if (run.scaler->enabled()) {
      record["loss_scale"] = run.scaler->scale();
      record["skipped_steps"] = stats.skipped_steps;
    }
    std::string line = "epoch " + std::to_string(epochs_done) + "/" + std::to_string(c.epochs);
    char buf[160];
    std::snprintf(buf, sizeof buf, ": train loss %.3f acc %.3f, %.1f img/s", stats.loss, stats.accuracy,
                  stats.images / std::max(1e-9, stats.seconds));
    line += buf;
    if (!run.split.val.empty()) {
      const EvalResult val = validate_globally(run, batches);
      run.last_val = val.confusion.to_json(run.data.classes);
      run.last_val["loss"] = val.loss;
      record["val_loss"] = val.loss;
      record["val_acc"] = val.confusion.accuracy();
      record["val_macro_f1"] = val.confusion.macro_f1();
      record["val_s"] = val.seconds;
      run.best_acc = std::max(run.best_acc, val.confusion.accuracy());
      std::snprintf(buf, sizeof buf, "; val loss %.3f acc %.4f macro-F1 %.4f", val.loss, val.confusion.accuracy(),
                    val.confusion.macro_f1());
      line += buf;
      if (c.target_acc > 0 && val.confusion.accuracy() >= c.target_acc && run.time_to_target < 0)
        run.time_to_target = train_seconds;
    }
    run.log(line);
    if (run.is_main()) {
      append_line(run.out / "metrics.jsonl", record.dump());
      save_checkpoint(run.out, run.model, *run.optimizer, *run.scaler, checkpoint_meta(run, epochs_done, train_seconds));
    }
    if (run.time_to_target >= 0) {
      run.log("reached target accuracy " + std::to_string(c.target_acc) + " after " + format_duration(run.time_to_target) +
          " of training");
      break;
    }
  }

  const nlohmann::json pipeline_report = pipeline_json(run);  // a collective: every rank takes part
  if (!run.is_main()) return nullptr;
  nlohmann::json summary = {{"arch", c.arch},
                            {"classes", run.data.classes},
                            {"image_size", c.image_size},
                            {"epochs", epochs_done},
                            {"steps", run.step},
                            {"train_images", run.split.train.size()},
                            {"val_images", run.split.val.size()},
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
                            {"world_size", run.world_size()},
                            {"batch_per_rank", c.batch_size},
                            {"global_batch", run.global_batch()},
                            {"peak_lr", run.peak_lr},
                            {"pipeline", pipeline_report},
                            {"backend", run.dp->backend()},
                            {"launcher", run.dp->world().launcher},
                            {"step_times_ms", step_times_json(*run.dp)},
                            {"step_times_ms_covers", "rank 0's host time per step: backward; all-reduce from "
                                                     "the first bucket's start to the last one's end; exposed: the "
                                                     "part of it after backward returned; overlapped: the rest"},
                            {"device", run.device.str()},
                            {"torch_version", compat::torch_version()},
                            {"config", to_json(c)}};
  write_file_atomically(run.out / "summary.json", summary.dump(2) + "\n");
  return summary;
}

}  // namespace histotrain
