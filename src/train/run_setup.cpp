// Setting a run up: each part (run.h) built by a function that returns it, in set_up_run()'s
// order; and a resume.
#include <torch/torch.h>

#include <algorithm>
#include <limits>
#include <set>

#include "core/checkpoint.h"
#include "core/compat.h"
#include "core/initial_weights.h"
#include "core/runtime.h"
#include "data/class_balance.h"
#include "leakage/group_finder.h"
#include "pipeline/local_pipeline.h"
#include "pipeline/pipeline_schedule.h"
#include "train/optimizer.h"
#include "train/out_folder.h"
#include "train/precision_choice.h"
#include "train/run.h"
#include "train/run_split.h"
#include "train/run_stages.h"
#include "train/trainer.h"
#include "util/display_text.h"
#include "util/errors.h"
#include "util/json_text.h"
#include "util/machine.h"
#include "util/progress.h"

namespace histotrain {

namespace {

// The run folder, checked before anything slow: outside the data, writable, holding no other run.
fs::path checked_out_folder(const TrainConfig& c) {
  const fs::path out = c.job.out;
  check_out_is_outside_the_data(c, out);
  ensure_writable_dir(out);  // fail before minutes of decoding, not after
  check_out_holds_no_other_run(c, out);
  return out;
}

RunWorld join_world(const TrainConfig& c, const fs::path& out) {
  const WorldInfo info = world_from_environment();
  const bool pipeline = c.parallel.pipeline_stages > 1 && c.parallel.devices.empty();  // stages on ranks
  if (pipeline && info.world_size != c.parallel.pipeline_stages)
    throw UsageError("--pipeline-stages " + std::to_string(c.parallel.pipeline_stages) + " needs " +
                     std::to_string(c.parallel.pipeline_stages) + " ranks, one per stage (histotrain launch -n " +
                     std::to_string(c.parallel.pipeline_stages) + " -- train ...); this job has " +
                     std::to_string(info.world_size));
  if (!c.parallel.devices.empty() && info.distributed())
    throw UsageError("--devices keeps every stage in one process: start one process, not " +
                     std::to_string(info.world_size) + " ranks");
  RunWorld world;
  world.out = out;
  world.device = c.parallel.devices.empty() ? device_for_rank(open_device(c.job.device), info)
                                            : open_devices(c.parallel.devices).front();
  world.dp = std::make_unique<DataParallel>(info, backend_request(c.parallel.backend), world.device,
                                            std::chrono::seconds(c.parallel.dist_timeout),
                                            pipeline ? DataParallel::Role::stages : DataParallel::Role::replicas);
  if (info.distributed() && !pipeline)
    world.log("data parallel: " + std::to_string(info.world_size) + " ranks (" + info.launcher + "), backend " +
              world.dp->backend() + ", master " + info.master_addr + ":" + std::to_string(info.master_port) +
              ", gradients: " + GradCompression(c.parallel.grad_compression, c.parallel.powersgd_start_step).describe());
  return world;
}

// Rank 0 holds the run folder while it writes there (another histotrain writing there is named
// first) and, for a new run, records the flags it was given.
std::unique_ptr<FolderLock> claim_out_folder(const TrainConfig& c, const RunWorld& world) {
  if (!world.is_main()) return nullptr;
  auto lock = std::make_unique<FolderLock>(world.out);
  check_out_holds_no_other_run(c, world.out);  // again: another process may have finished there meanwhile
  check_out_holds_no_stray_run_files(world.out);
  if (c.job.resume.empty()) write_file_atomically(world.out / kRunConfigFile, json_text(to_json(c), 2) + "\n");
  return lock;
}

// Threads, determinism and the seed of this process; a precision the device lacks is refused
// before minutes of decoding.
void set_up_process(const TrainConfig& c, const RunWorld& world) {
  set_threads(c.job.threads, world.dp->world().local_world_size);
  if (c.job.deterministic) use_deterministic_algorithms();
  if (const auto precision = fixed_precision(c.precision.amp)) check_precision_supported(*precision, world.device);
  compat::manual_seed(c.job.seed);
}

// The tiles and their split (audited when per image), the split's lists written into the run.
RunData load_data(const TrainConfig& c, const RunWorld& world) {
  // Groups keep near-copies on one side of a split; with no validation images there is none.
  const DataOptions data_options =
      training_data_options(c, c.job.quiet || !world.is_main(),
                            c.data.split == DataSplit::group && c.data.val_images.empty() && c.data.val_fraction > 0);
  const auto data_start = Clock::now();
  RunData d;
  world.dp->node_leaders_first([&] { d.tiles = load_dataset(data_options); });
  world.log(describe(d.tiles) + "\ndata ready in " + format_duration(seconds_since(data_start)));
  d.input_mpp = model_input_mpp(d.tiles);
  if (d.input_mpp > 0)
    world.log("scale: " + std::to_string(d.input_mpp) + " microns per model input pixel (slides are read at it)");
  if (d.tiles.classes.size() < 2) throw Error("training needs at least 2 classes, found only '" + d.tiles.classes[0] + "'");
  d.split = make_split(d.tiles, c);
  world.log("split: " + std::to_string(d.split.train.size()) + " training, " + std::to_string(d.split.val.size()) +
            " validation images (" + split_origin(d.tiles, c) + ")");
  if (c.data.split == DataSplit::random && !d.split.val.empty())
    world.dp->node_leaders_first([&] {
      if (world.is_main()) d.split_audit = audit_random_split(d.tiles, d.split, c, world);
    });
  write_split_lists(d.tiles, d.split, world);
  if (c.job.target_acc > 0 && d.split.val.empty()) throw UsageError("--target-acc needs a validation split (--val-fraction > 0)");
  return d;
}

// Ranks started with different flags or data would meet in collectives of different sizes:
// compare what shapes the run first (paths, threads and output flags may differ per node).
void check_ranks_agree(const TrainConfig& c, const RunWorld& world, const RunData& d) {
  world.dp->check_agreement("configuration", json_text(shared_by_ranks(c)));
  world.dp->check_agreement("data", json_text(nlohmann::json{{"classes", d.tiles.classes},
                                                             {"images", d.tiles.size()},
                                                             {"training_images", d.split.train.size()},
                                                             {"validation_images", d.split.val.size()}}));
}

// --stain-normalize: the reference fitted on the training tiles or on --stain-reference's file
// (the same on every rank: the same tiles). Every tile is normalised to it once, into a tile
// cache of its own that `tiles` reads from then on.
StainReference normalise_stains(const TrainConfig& c, const RunWorld& world, TileDataset& tiles, const Split& split) {
  if (c.data.stain_normalize == StainMethod::none) return {};
  const StainReference reference =
      c.data.stain_reference == "train"
          ? fit_reference_on_items(c.data.stain_normalize, tiles, split.train)
          : fit_reference_on_file(c.data.stain_normalize, c.data.stain_reference, c.data.image_size);
  const DataOptions options = training_data_options(c, c.job.quiet || !world.is_main(), false);
  std::string line;
  world.dp->node_leaders_first([&] { line = normalize_dataset_stains(tiles, reference, options); });
  world.log(line);
  return reference;
}

// --normalize dataset: the training tiles' own channel statistics (after stain normalisation),
// the same on every rank (the same tiles); ImageNet's otherwise.
Normalization input_normalization(const TrainConfig& c, const RunWorld& world, const TileDataset& tiles,
                                  const Split& split) {
  if (c.data.normalize != InputNormalization::dataset) return {};
  const Normalization n = measure_normalization(tiles, split.train);
  char text[200];
  std::snprintf(text, sizeof text,
                "--normalize dataset: channel mean %.4f %.4f %.4f, std %.4f %.4f %.4f over the %zu training tiles",
                n.mean[0], n.mean[1], n.mean[2], n.std[0], n.std[1], n.std[2], split.train.size());
  world.log(text);
  return n;
}

// --amp auto: the precision and layout measured fastest here (or cached from an earlier run on
// this machine) become the run's --amp and --channels-last, so checkpoints, eval and predict see
// what was trained. Ranks time the candidates together; rank 0's decision is everyone's.
struct DecidedPrecision {
  PrecisionConfig config;  // the run's, with --amp auto replaced by the choice
  Precision precision = Precision::fp32;
  nlohmann::json choice;   // the candidates' figures (null without --amp auto)
};

DecidedPrecision decide_precision(const TrainConfig& c, const RunWorld& world, int64_t classes) {
  DecidedPrecision decided;
  decided.config = c.precision;
  if (c.precision.amp == AmpMode::automatic) {
    PrecisionProblem problem;
    problem.machine = describe(cpu_info());
    if (world.device.is_cuda()) {
      const auto gpus = compat::gpus();
      if (!gpus.empty()) problem.machine += "; " + gpus.front().name;
    }
    problem.torch_version = compat::torch_version();
    problem.device = world.device.is_cuda() ? "cuda" : "cpu";
    problem.arch = c.model.arch.name;
    problem.image_size = c.data.image_size;
    problem.batch_size = c.optim.batch_size / c.parallel.micro_batches;
    problem.threads = at::get_num_threads();
    problem.ranks_on_node = world.dp->world().local_world_size;
    problem.candidates = precision_candidates(world.device, c.precision.channels_last);
    problem.tuned_conv_grads = c.precision.conv_grad == ConvGradMode::automatic && !c.job.deterministic;
    const StepTimer timer = model_step_timer(c.model.arch.name, classes, problem.batch_size, c.data.image_size,
                                             world.device, problem.tuned_conv_grads);
    const PrecisionDecision decision =
        choose_precision(problem, timer, default_precision_cache(), world.dp->communicator());
    decided.config.amp = amp_mode_of(decision.chosen.precision);
    decided.config.channels_last = decision.chosen.channels_last;
    decided.choice = decision.to_json(problem.candidates);
    world.log("--amp auto: " + decision.describe(problem.candidates));
  }
  decided.precision = *fixed_precision(decided.config.amp);
  check_precision_supported(decided.precision, world.device);
  return decided;
}

StepPlan plan_steps(const TrainConfig& c, size_t training_images, int data_ranks) {
  StepPlan plan;
  plan.data_ranks = data_ranks;
  plan.update_batch = int64_t{c.optim.batch_size} * c.optim.accumulate;
  plan.global_batch = plan.update_batch * data_ranks;
  // Every rank takes the same number of steps: the epoch drops the remainder of a global batch.
  plan.steps_per_epoch = static_cast<int64_t>(training_images) / plan.global_batch;
  if (plan.steps_per_epoch == 0)
    throw Error("the training split holds " + std::to_string(training_images) +
                " images, fewer than one global batch of " + std::to_string(plan.global_batch) +
                "; lower --batch-size or use fewer ranks");
  plan.peak_lr = c.optim.lr_scaling == LrScaling::linear ? c.optim.lr * data_ranks : c.optim.lr;
  plan.budget.seconds = c.optim.time_budget;
  plan.resolution = {c.data.progressive_from, c.data.image_size, c.data.progressive_until};
  plan.budget.warmup_steps = static_cast<int64_t>(c.optim.warmup_epochs * plan.steps_per_epoch);
  // With a time budget the schedule has no last step: the budget ends it.
  plan.schedule_steps = plan.budget.on() ? std::numeric_limits<int64_t>::max() / 4 : plan.steps_per_epoch * c.optim.epochs;
  // --max-steps interrupts the run; it does not reshape the schedule, so a run stopped early and
  // resumed matches one that never stopped.
  plan.stop_step = c.job.max_steps > 0 ? std::min(plan.schedule_steps, c.job.max_steps) : plan.schedule_steps;
  return plan;
}

// Label smoothing, and with --balance the class weights or the balanced sampler, said in the log.
// Both come from the same inverse frequencies: a weight of 2 for a class doubles its share of the
// loss (loss) or of the draws (sampler).
LossOptions loss_options(const TrainConfig& c, const RunWorld& world, const RunData& d) {
  LossOptions loss;
  loss.label_smoothing = c.optim.label_smoothing;
  if (c.optim.balance == ClassBalance::none) return loss;
  const int64_t classes = d.class_count();
  const std::vector<double> weights = inverse_frequency_weights(d.split.train, d.tiles.labels, classes);
  std::string line = c.optim.balance == ClassBalance::loss
                         ? "--balance loss: class weights in the cross-entropy:"
                         : "--balance sampler: every class drawn equally often; each class's images drawn this many "
                           "times as often as by plain shuffling:";
  for (int64_t k = 0; k < classes; ++k) {
    char text[96];
    std::snprintf(text, sizeof text, " %s %.3f", d.tiles.classes[k].c_str(), weights[k]);
    line += text;
  }
  if (c.optim.balance == ClassBalance::loss) loss.class_weights = torch::tensor(weights, torch::kFloat32).to(world.device);
  world.log(line);
  return loss;
}

// The model's starting weights: random (seeded), or --init's for a run that does not resume
// (a resumed run's own weights replace them anyway), with what --init loaded.
struct InitialModel {
  ResNet model{nullptr};
  nlohmann::json init_report;  // null without --init
};

InitialModel initial_model(const TrainConfig& c, int64_t classes, const std::optional<WeightsFile>& init,
                           const RunWorld& world) {
  ResNet model(c.model.arch.name, classes);
  nlohmann::json report;
  if (init) {
    const InitialWeights loaded = load_initial_weights(model, *init);
    report = loaded.to_json();
    world.log(loaded.describe());
    if (c.data.normalize != InputNormalization::imagenet)
      world.log("note: --init weights from ImageNet expect --normalize imagenet (the default)");
  }
  if (c.model.freeze_backbone) {
    model->freeze_backbone();
    world.log("--freeze-backbone: only the classifier head (fc) learns; the backbone and its BatchNorm statistics "
              "stay fixed");
  }
  if (c.model.backbone_lr_scale != 1)
    world.log("--backbone-lr-scale: every layer but the head learns at " + std::to_string(c.model.backbone_lr_scale) +
              " of the learning rate");
  return {model, report};
}

// The model on its device and layout, with its optimizer, loss scaler and weight average.
Trainee build_trainee(const TrainConfig& c, const RunWorld& world, ResNet model, Precision precision, LossOptions loss) {
  Trainee t;
  t.model = std::move(model);
  t.precision = precision;
  t.loss = std::move(loss);
  t.model->to(world.device);
  if (c.precision.channels_last) {
    to_channels_last(*t.model);
    t.format = torch::MemoryFormat::ChannelsLast;
  }
  t.model->tune_conv_weight_grads(c.precision.conv_grad == ConvGradMode::automatic && world.device.is_cpu() &&
                                  precision == Precision::fp32 && !c.precision.channels_last &&
                                  !c.job.deterministic && !c.model.freeze_backbone);
  t.optimizer = make_optimizer(t.model, c.optim, c.model.backbone_lr_scale);
  t.scaler = std::make_unique<GradScaler>(precision == Precision::fp16);
  if (c.optim.ema > 0) t.average = std::make_unique<WeightAverage>(t.model, c.optim.ema);
  return t;
}

// Why this run cannot replay its step as a CUDA graph; "" when it can.
std::string cuda_graph_obstacle(const TrainConfig& c, const RunWorld& world, const StepEngine& engine,
                                const StepPlan& plan, Precision precision) {
  if (!world.device.is_cuda()) return "the run is not on a CUDA device";
  if (!GraphedTrainStep::available())
    return "this build has no CUDA graphs (LibTorch " + compat::torch_version() + ", CUDA " +
           (compat::cuda_available() ? "yes" : "no") + "; graphs need a CUDA LibTorch 2.x)";
  if (world.world_size() > 1) return "data-parallel and pipeline runs communicate inside the step";
  if (engine.device_stages) return "pipeline stages on several devices";
  if (plan.resolution.on()) return "progressive resizing changes the step's shapes";
  if (precision == Precision::fp16) return "fp16 loss scaling may skip steps (use --amp bf16)";
  if (c.data.mixup > 0 || c.data.cutmix > 0) return "mixed targets are not in the captured step";
  if (c.optim.clip_grad > 0) return "gradient clipping is not in the captured step";
  if (c.optim.accumulate > 1) return "gradient accumulation is not in the captured step";
  if (c.model.freeze_backbone || c.model.backbone_lr_scale != 1)
    return "the captured update takes one learning rate for every layer (--freeze-backbone, --backbone-lr-scale)";
  return "";
}

bool use_cuda_graph(const TrainConfig& c, const RunWorld& world, const StepEngine& engine, const StepPlan& plan,
                    Precision precision) {
  const CudaGraphMode mode = c.precision.cuda_graph;
  const std::string obstacle = cuda_graph_obstacle(c, world, engine, plan, precision);
  if (mode == CudaGraphMode::on && !obstacle.empty()) throw UsageError("--cuda-graph on: " + obstacle);
  return mode != CudaGraphMode::off && obstacle.empty();
}

}  // namespace

DataOptions training_data_options(const TrainConfig& c, bool quiet, bool find_groups) {
  DataOptions options;
  options.root = c.data.root;
  options.manifest = c.data.manifest;
  options.manifest_options = {parse_manifest_columns(c.data.manifest_columns), c.data.manifest_root};
  options.val_root = c.data.val_data;
  options.image_size = c.data.image_size;
  options.groups_csv = c.data.groups;
  options.cache_dir = c.data.cache_dir;
  options.workers = c.data.workers;
  options.quiet = quiet;
  if (find_groups && c.data.groups.empty())
    options.find_groups = near_copy_group_finder(c.data.cache_dir, c.data.workers, quiet);
  return options;
}

Run set_up_run(const TrainConfig& config) {
  Run run;
  run.config = config;
  const TrainConfig& c = run.config;
  const fs::path out = checked_out_folder(c);
  run.world = join_world(c, out);
  run.world.out_lock = claim_out_folder(c, run.world);
  set_up_process(c, run.world);
  // --init is read before the data (minutes of decoding), loaded once the classes are known; a
  // resumed run's own weights replace it, so it needs no file then.
  std::optional<WeightsFile> init;
  if (!c.model.init.empty() && c.job.resume.empty()) init = read_weights_file(c.model.init);
  run.data = load_data(c, run.world);
  check_ranks_agree(c, run.world, run.data);
  const int64_t classes = run.data.class_count();
  DecidedPrecision precision = decide_precision(c, run.world, classes);
  run.config.precision = precision.config;  // what --amp auto chose: `c` reads it from here on
  run.precision_choice = std::move(precision.choice);
  run.plan = plan_steps(c, run.data.split.train.size(), run.world.data_ranks());
  run.data.stain = normalise_stains(c, run.world, run.data.tiles, run.data.split);
  run.data.normalization = input_normalization(c, run.world, run.data.tiles, run.data.split);
  InitialModel initial = initial_model(c, classes, init, run.world);
  init.reset();  // its tensors are in the model now
  run.init_report = std::move(initial.init_report);
  run.trainee =
      build_trainee(c, run.world, initial.model, precision.precision, loss_options(c, run.world, run.data));
  if (c.parallel.pipeline_stages > 1) run.engine = cut_into_stages(c, run.world, run.trainee, classes);
  run.engine.use_graph = use_cuda_graph(c, run.world, run.engine, run.plan, run.trainee.precision);
  return run;
}

void restore(Run& run, RunProgress& p) {
  const fs::path from = run_folder(run.config.job.resume);
  const nlohmann::json meta = read_checkpoint_meta(from);
  if (meta.at("classes").get<std::vector<std::string>>() != run.data.tiles.classes)
    throw Error("cannot resume '" + from.string() + "': its classes differ from those found in " + run.data.tiles.scan.root);

  p.start_epoch = meta.at("epoch").get<int64_t>();
  p.step = meta.at("step").get<int64_t>();
  const bool had_average =
      load_training_state(from, run.trainee.model, *run.trainee.optimizer, *run.trainee.scaler, p.step,
                          run.trainee.average ? &run.trainee.average->model() : nullptr, run.config.trust_checkpoint,
                          &run.resumed_reducer_state);
  run.resumed_world = meta.value("world_size", 1);
  run.trainee.model->to(run.world.device);
  if (run.engine.device_stages)
    place_stages(run.trainee.model, *run.engine.device_stages, open_devices(run.config.parallel.devices));
  if (run.config.precision.channels_last) to_channels_last(*run.trainee.model);
  if (run.trainee.average) {
    run.trainee.average->model()->to(run.world.device);
    if (run.config.precision.channels_last) to_channels_last(*run.trainee.average->model());
    if (!had_average) run.trainee.average->reset();  // the saved run had no --ema: start it from here
  }
  if (meta.contains("epoch_progress")) p.resumed_progress = EpochProgress::from_json(meta.at("epoch_progress"));
  const int saved_world = meta.value("world_size", 1);
  if (saved_world != run.world_size()) {
    // Steps per epoch and each rank's share of an epoch depend on the world size: the run
    // continues at the start of the epoch it was in.
    p.step = p.start_epoch * run.plan.steps_per_epoch;
    p.resumed_progress = {};
    run.log("note: the run was saved with " + std::to_string(saved_world) + " rank(s) and continues with " +
            std::to_string(run.world_size()) + "; it resumes at the start of epoch " +
            std::to_string(p.start_epoch + 1) + " (step " + std::to_string(p.step) + ")");
  } else if (p.step != p.start_epoch * run.plan.steps_per_epoch + p.resumed_progress.steps) {
    throw Error("cannot resume '" + from.string() + "': its step " + std::to_string(p.step) +
                " does not fall where this run's epochs of " + std::to_string(run.plan.steps_per_epoch) +
                " steps put it (were the data or the batch size changed?)");
  }
  p.last_val = meta.value("metrics", nlohmann::json());
  const nlohmann::json kept = meta.value("weights", nlohmann::json());  // checkpoints before --keep: the last
  p.kept_epoch = kept.is_object() ? kept.value("epoch", p.start_epoch) : p.start_epoch;
  p.kept_step = kept.is_object() ? kept.value("step", p.step) : p.step;
  p.kept_val = kept.is_object() ? kept.value("val", p.last_val) : p.last_val;
  run.init_report = meta.value("init", nlohmann::json());  // where the run's weights first came from
  // The training time before the epoch the run starts in (a checkpoint inside an epoch counts
  // that epoch's steps in both train_seconds and its progress).
  p.train_seconds = meta.value("train_seconds", 0.0) - p.resumed_progress.seconds;
  p.best_acc = meta.value("best_val_acc", 0.0);
  p.warmup_end_seconds = meta.value("warmup_end_s", -1.0);
  run.log("resumed from " + from.string() + " at step " + std::to_string(p.step) + " (epoch " +
          std::to_string(p.start_epoch + 1) + ", " +
          (p.resumed_progress.steps > 0 ? std::to_string(p.resumed_progress.steps) + " of its steps done)"
                                          : "from its start)"));
}

}  // namespace histotrain
