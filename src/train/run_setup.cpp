// Setting a run up: the world, the data, the model, the pipeline stages, a resume.
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
#include "pipeline/transfer_cost.h"
#include "train/optimizer.h"
#include "train/out_folder.h"
#include "train/precision_choice.h"
#include "train/run.h"
#include "train/run_split.h"
#include "train/trainer.h"
#include "util/display_text.h"
#include "util/errors.h"
#include "util/json_text.h"
#include "util/machine.h"
#include "util/progress.h"

namespace histotrain {

namespace {

void load_data(Run& run) {
  const TrainConfig& c = run.config;
  // Groups keep near-copies on one side of a split; with no validation images there is none.
  const DataOptions data_options =
      training_data_options(c, c.job.quiet || !run.is_main(),
                            c.data.split == DataSplit::group && c.data.val_images.empty() && c.data.val_fraction > 0);
  const auto data_start = Clock::now();
  run.dp->node_leaders_first([&] { run.data = load_dataset(data_options); });
  run.log(describe(run.data) + "\ndata ready in " + format_duration(seconds_since(data_start)));
  run.input_mpp = model_input_mpp(run.data);
  if (run.input_mpp > 0) run.log("scale: " + std::to_string(run.input_mpp) + " microns per model input pixel (slides are read at it)");
  if (run.data.classes.size() < 2) throw Error("training needs at least 2 classes, found only '" + run.data.classes[0] + "'");
  run.split = make_split(run.data, c);
  run.log("split: " + std::to_string(run.split.train.size()) + " training, " + std::to_string(run.split.val.size()) +
          " validation images (" + split_origin(run) + ")");
  if (c.data.split == DataSplit::random && !run.split.val.empty())
    run.dp->node_leaders_first([&] {
      if (run.is_main()) audit_random_split(run);
    });
  write_split_lists(run);
  if (c.job.target_acc > 0 && run.split.val.empty()) throw UsageError("--target-acc needs a validation split (--val-fraction > 0)");
}

void plan_steps(Run& run) {
  const TrainConfig& c = run.config;
  // Every rank takes the same number of steps: the epoch drops the remainder of a global batch.
  run.steps_per_epoch = static_cast<int64_t>(run.split.train.size()) / run.global_batch();
  if (run.steps_per_epoch == 0)
    throw Error("the training split holds " + std::to_string(run.split.train.size()) +
                " images, fewer than one global batch of " + std::to_string(run.global_batch()) +
                "; lower --batch-size or use fewer ranks");
  run.peak_lr = c.optim.lr_scaling == LrScaling::linear ? c.optim.lr * run.data_ranks() : c.optim.lr;
  run.budget.seconds = c.optim.time_budget;
  run.resolution = {c.data.progressive_from, c.data.image_size, c.data.progressive_until};
  run.budget.warmup_steps = static_cast<int64_t>(c.optim.warmup_epochs * run.steps_per_epoch);
  // With a time budget the schedule has no last step: the budget ends it.
  run.schedule_steps = run.budget.on() ? std::numeric_limits<int64_t>::max() / 4 : run.steps_per_epoch * c.optim.epochs;
  // --max-steps interrupts the run; it does not reshape the schedule, so a run stopped early and
  // resumed matches one that never stopped.
  run.stop_step = c.job.max_steps > 0 ? std::min(run.schedule_steps, c.job.max_steps) : run.schedule_steps;
}

// Label smoothing, and with --balance the class weights or the balanced sampler, said in the log.
// Both come from the same inverse frequencies: a weight of 2 for a class doubles its share of the
// loss (loss) or of the draws (sampler).
void set_loss(Run& run) {
  const TrainConfig& c = run.config;
  run.loss.label_smoothing = c.optim.label_smoothing;
  if (c.optim.balance == ClassBalance::none) return;
  const auto classes = static_cast<int64_t>(run.data.classes.size());
  const std::vector<double> weights = inverse_frequency_weights(run.split.train, run.data.labels, classes);
  std::string line = c.optim.balance == ClassBalance::loss
                         ? "--balance loss: class weights in the cross-entropy:"
                         : "--balance sampler: every class drawn equally often; each class's images drawn this many "
                           "times as often as by plain shuffling:";
  for (int64_t k = 0; k < classes; ++k) {
    char text[96];
    std::snprintf(text, sizeof text, " %s %.3f", run.data.classes[k].c_str(), weights[k]);
    line += text;
  }
  if (c.optim.balance == ClassBalance::loss) run.loss.class_weights = torch::tensor(weights, torch::kFloat32).to(run.device);
  run.log(line);
}

// --stain-normalize: the reference fitted on the training tiles or on --stain-reference's file
// (the same on every rank: the same tiles), and every tile normalised to it once, into a tile
// cache of its own.
void set_stain_normalization(Run& run) {
  const TrainConfig& c = run.config;
  if (c.data.stain_normalize == StainMethod::none) return;
  run.stain = c.data.stain_reference == "train"
                  ? fit_reference_on_items(c.data.stain_normalize, run.data, run.split.train)
                  : fit_reference_on_file(c.data.stain_normalize, c.data.stain_reference, c.data.image_size);
  const DataOptions options = training_data_options(c, c.job.quiet || !run.is_main(), false);
  std::string line;
  run.dp->node_leaders_first([&] { line = normalize_dataset_stains(run.data, run.stain, options); });
  run.log(line);
}

// --normalize dataset: the training tiles' own channel statistics, the same on every rank (the
// same tiles); ImageNet's otherwise.
void set_normalization(Run& run) {
  if (run.config.data.normalize != InputNormalization::dataset) return;
  run.normalization = measure_normalization(run.data, run.split.train);
  const Normalization& n = run.normalization;
  char text[200];
  std::snprintf(text, sizeof text,
                "--normalize dataset: channel mean %.4f %.4f %.4f, std %.4f %.4f %.4f over the %zu training tiles",
                n.mean[0], n.mean[1], n.mean[2], n.std[0], n.std[1], n.std[2], run.split.train.size());
  run.log(text);
}

// The model's starting weights: random (seeded), or --init's for a run that does not resume
// (a resumed run's own weights replace them anyway).
void initialise_model(Run& run) {
  const TrainConfig& c = run.config;
  run.model = ResNet(c.model.arch, static_cast<int64_t>(run.data.classes.size()));
  if (run.init_weights) {
    const InitialWeights init = load_initial_weights(run.model, *run.init_weights);
    run.init_weights.reset();
    run.init_report = init.to_json();
    run.log(init.describe());
    if (c.data.normalize != InputNormalization::imagenet)
      run.log("note: --init weights from ImageNet expect --normalize imagenet (the default)");
  }
  if (c.model.freeze_backbone) {
    run.model->freeze_backbone();
    run.log("--freeze-backbone: only the classifier head (fc) learns; the backbone and its BatchNorm statistics "
            "stay fixed");
  }
  if (c.model.backbone_lr_scale != 1)
    run.log("--backbone-lr-scale: every layer but the head learns at " + std::to_string(c.model.backbone_lr_scale) +
            " of the learning rate");
}

void build_model(Run& run) {
  const TrainConfig& c = run.config;
  initialise_model(run);
  run.model->to(run.device);
  if (c.precision.channels_last) {
    to_channels_last(*run.model);
    run.format = torch::MemoryFormat::ChannelsLast;
  }
  run.model->tune_conv_weight_grads(c.precision.conv_grad == ConvGradMode::automatic && run.device.is_cpu() &&
                                    run.precision == Precision::fp32 && !c.precision.channels_last &&
                                    !c.job.deterministic && !c.model.freeze_backbone);
  run.optimizer = make_optimizer(run.model, c.optim, c.model.backbone_lr_scale);
  run.scaler = std::make_unique<GradScaler>(run.precision == Precision::fp16);
  if (c.optim.ema > 0) run.average = std::make_unique<WeightAverage>(run.model, c.optim.ema);
}

// Why this run cannot replay its step as a CUDA graph; "" when it can.
std::string cuda_graph_obstacle(const Run& run) {
  if (!run.device.is_cuda()) return "the run is not on a CUDA device";
  if (!GraphedTrainStep::available())
    return "this build has no CUDA graphs (LibTorch " + compat::torch_version() + ", CUDA " +
           (compat::cuda_available() ? "yes" : "no") + "; graphs need a CUDA LibTorch 2.x)";
  if (run.world_size() > 1) return "data-parallel and pipeline runs communicate inside the step";
  if (run.device_stages) return "pipeline stages on several devices";
  if (run.resolution.on()) return "progressive resizing changes the step's shapes";
  if (run.precision == Precision::fp16) return "fp16 loss scaling may skip steps (use --amp bf16)";
  if (run.config.data.mixup > 0 || run.config.data.cutmix > 0) return "mixed targets are not in the captured step";
  if (run.config.optim.clip_grad > 0) return "gradient clipping is not in the captured step";
  if (run.config.optim.accumulate > 1) return "gradient accumulation is not in the captured step";
  if (run.config.model.freeze_backbone || run.config.model.backbone_lr_scale != 1)
    return "the captured update takes one learning rate for every layer (--freeze-backbone, --backbone-lr-scale)";
  return "";
}

void decide_cuda_graph(Run& run) {
  const CudaGraphMode mode = run.config.precision.cuda_graph;
  const std::string obstacle = cuda_graph_obstacle(run);
  if (mode == CudaGraphMode::on && !obstacle.empty()) throw UsageError("--cuda-graph on: " + obstacle);
  run.use_graph = mode != CudaGraphMode::off && obstacle.empty();
}

// Every rank's measurement, averaged: ranks that measured at the same time saw the same
// contention, and one plan must come out of them.
UnitCosts mean_over_ranks(UnitCosts costs, Communicator* comm) {
  if (!comm) return costs;
  std::vector<double>* parts[] = {&costs.forward, &costs.backward, &costs.update};
  for (std::vector<double>* part : parts) {
    auto sum = torch::tensor(*part, torch::kFloat64);
    comm->all_reduce_sum(sum);
    for (size_t u = 0; u < part->size(); ++u)
      (*part)[u] = sum[static_cast<int64_t>(u)].item<double>() / comm->world_size();
  }
  return costs;
}

// "estimated step 1040 ms, stages idle 9%, 14%, receiving 6 ms, 6 ms a step": to set against
// the measured step.
std::string describe_estimate(const Run& run) {
  if (!run.pipeline_estimate) return "";
  const StepEstimate& estimate = *run.pipeline_estimate;
  const bool transfers = run.dp->communicator() != nullptr;  // measured between ranks; free in one process
  char text[80];
  std::snprintf(text, sizeof text, "\n  estimated step %.0f ms%s, stages idle", 1000 * estimate.seconds,
                transfers ? "" : " (transfers free)");
  std::string line = text;
  for (size_t s = 0; s < estimate.idle.size(); ++s) {
    std::snprintf(text, sizeof text, "%s %.0f%%", s ? "," : "", 100 * estimate.idle[s]);
    line += text;
  }
  if (!transfers) return line;
  line += ", receiving";
  for (size_t s = 0; s < estimate.receiving.size(); ++s) {
    std::snprintf(text, sizeof text, "%s %.1f ms", s ? "," : "", 1000 * estimate.receiving[s]);
    line += text;
  }
  return line + " a step (measured transfers)";
}

// The stages: as --split says, else the cut whose schedule is shortest with the per-unit times
// measured by every rank together (so the cores are as busy as during training); rank 0's plan is
// everyone's.
void cut_into_stages(Run& run) {
  const TrainConfig& c = run.config;
  Communicator* comm = run.dp->communicator();  // null for stages on devices in one process
  const int64_t units = run.model->unit_count();
  const int chunks = c.parallel.pipeline_stages * c.parallel.virtual_stages;
  const PipelineSchedule schedule = c.parallel.pipeline_schedule;
  std::vector<double> costs;
  StagePlan plan;
  if (!c.parallel.stage_cut.empty()) {
    plan = parse_split(c.parallel.stage_cut, units, chunks);
    plan.ranks = c.parallel.pipeline_stages;
  } else {
    UnitCosts measured = mean_over_ranks(
        measure_unit_costs(c.model.arch, static_cast<int64_t>(run.data.classes.size()), c.optim.batch_size / c.parallel.micro_batches,
                           c.data.image_size, run.device, run.format),
        comm);
    if (comm) measured.transfer = measure_transfers(*comm, measured.output_elements, run.device);
    costs = measured.per_step(c.parallel.micro_batches);
    auto bounds = torch::zeros({chunks + 1}, torch::kLong);
    if (run.is_main()) {
      plan = balance_stages(costs, chunks);
      plan.ranks = c.parallel.pipeline_stages;
      plan = fit_to_schedule(plan, measured, c.parallel.micro_batches, schedule);
      for (int s = 0; s <= chunks; ++s) bounds[s] = plan.bounds[static_cast<size_t>(s)];
    }
    if (comm) comm->broadcast_from_rank0({bounds});  // one plan, even if the ranks' sums differ in the last bit
    plan.bounds.assign(bounds.data_ptr<int64_t>(), bounds.data_ptr<int64_t>() + bounds.numel());
    plan.ranks = c.parallel.pipeline_stages;
    run.pipeline_estimate = estimate_step(plan, measured, c.parallel.micro_batches, schedule);
  }
  run.log("pipeline: " + std::to_string(c.parallel.pipeline_stages) + " stages on " +
          (c.parallel.devices.empty() ? std::to_string(c.parallel.pipeline_stages) + " ranks" : "devices " + c.parallel.devices) + ", " +
          std::to_string(c.parallel.micro_batches) + " micro-batch(es) of " +
          std::to_string(c.optim.batch_size / c.parallel.micro_batches) + " per batch (" +
          (schedule == PipelineSchedule::fill_drain ? "GPipe" : "1F1B") +
          (c.parallel.virtual_stages > 1 ? ", interleaved: " + std::to_string(c.parallel.virtual_stages) + " chunks per stage)" : ")") +
          (c.parallel.stage_cut.empty() ? ", cut on measured time per step:" : ", split as given:") + "\n" +
          describe(plan, run.model, costs) + describe_estimate(run));
  if (comm) {
    run.pipeline = std::make_unique<PipelineStage>(run.model, plan, *comm, c.data.image_size, run.format, schedule);
  } else {
    place_stages(run.model, plan, parse_devices(c.parallel.devices));
    run.device_stages = plan;
    run.device_schedule = schedule;
  }
}

// Ranks started with different flags or data would meet in collectives of different sizes:
// compare what shapes the run first (paths, threads and output flags may differ per node).
void check_ranks_agree(Run& run) {
  run.dp->check_agreement("configuration", json_text(shared_by_ranks(run.config)));
  run.dp->check_agreement("data", json_text(nlohmann::json{{"classes", run.data.classes},
                                                           {"images", run.data.size()},
                                                           {"training_images", run.split.train.size()},
                                                           {"validation_images", run.split.val.size()}}));
}

// --amp auto: the precision and layout measured fastest here (or cached from an earlier run on
// this machine) become the run's --amp and --channels-last, so checkpoints, eval and predict see
// what was trained. Ranks time the candidates together; rank 0's decision is everyone's.
void decide_precision(Run& run) {
  TrainConfig& c = run.config;
  if (c.precision.amp == AmpMode::automatic) {
    PrecisionProblem problem;
    problem.machine = describe(cpu_info());
    if (run.device.is_cuda()) {
      const auto gpus = compat::gpus();
      if (!gpus.empty()) problem.machine += "; " + gpus.front().name;
    }
    problem.torch_version = compat::torch_version();
    problem.device = run.device.is_cuda() ? "cuda" : "cpu";
    problem.arch = c.model.arch;
    problem.image_size = c.data.image_size;
    problem.batch_size = c.optim.batch_size / c.parallel.micro_batches;
    problem.threads = at::get_num_threads();
    problem.ranks_on_node = run.dp->world().local_world_size;
    problem.candidates = precision_candidates(run.device, c.precision.channels_last);
    problem.tuned_conv_grads = c.precision.conv_grad == ConvGradMode::automatic && !c.job.deterministic;
    const StepTimer timer = model_step_timer(c.model.arch, static_cast<int64_t>(run.data.classes.size()),
                                             problem.batch_size, c.data.image_size, run.device,
                                             problem.tuned_conv_grads);
    const PrecisionDecision decision =
        choose_precision(problem, timer, default_precision_cache(), run.dp->communicator());
    c.precision.amp = amp_mode_of(decision.chosen.precision);
    c.precision.channels_last = decision.chosen.channels_last;
    run.precision_choice = decision.to_json(problem.candidates);
    run.log("--amp auto: " + decision.describe(problem.candidates));
  }
  run.precision = *fixed_precision(c.precision.amp);
  check_precision_supported(run.precision, run.device);
}

void join_world(Run& run) {
  const TrainConfig& c = run.config;
  const WorldInfo world = world_from_environment();
  const bool pipeline = c.parallel.pipeline_stages > 1 && c.parallel.devices.empty();  // stages on ranks
  if (pipeline && world.world_size != c.parallel.pipeline_stages)
    throw UsageError("--pipeline-stages " + std::to_string(c.parallel.pipeline_stages) + " needs " +
                     std::to_string(c.parallel.pipeline_stages) + " ranks, one per stage (histotrain launch -n " +
                     std::to_string(c.parallel.pipeline_stages) + " -- train ...); this job has " +
                     std::to_string(world.world_size));
  if (!c.parallel.devices.empty() && world.distributed())
    throw UsageError("--devices keeps every stage in one process: start one process, not " +
                     std::to_string(world.world_size) + " ranks");
  run.device = c.parallel.devices.empty() ? device_for_rank(parse_device(c.job.device), world) : parse_devices(c.parallel.devices).front();
  run.dp = std::make_unique<DataParallel>(world, backend_request(c.parallel.backend), run.device, std::chrono::seconds(c.parallel.dist_timeout),
                                          pipeline ? DataParallel::Role::stages : DataParallel::Role::replicas);
  if (world.distributed() && !pipeline)
    run.log("data parallel: " + std::to_string(world.world_size) + " ranks (" + world.launcher + "), backend " +
            run.dp->backend() + ", master " + world.master_addr + ":" + std::to_string(world.master_port) +
            ", gradients: " + GradCompression(c.parallel.grad_compression, c.parallel.powersgd_start_step).describe());
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

void prepare(Run& run) {
  const TrainConfig& c = run.config;
  run.out = c.job.out;
  check_out_is_outside_the_data(c, run.out);
  ensure_writable_dir(run.out);  // fail before minutes of decoding, not after
  check_out_holds_no_other_run(c, run.out);
  join_world(run);
  if (run.is_main()) {
    run.out_lock = std::make_unique<FolderLock>(run.out);  // another histotrain writing there is named first
    check_out_holds_no_other_run(c, run.out);  // again: another process may have finished there meanwhile
    check_out_holds_no_stray_run_files(run.out);
  }
  if (c.job.resume.empty() && run.is_main()) write_file_atomically(run.out / kRunConfigFile, json_text(to_json(c), 2) + "\n");
  set_threads(c.job.threads, run.dp->world().local_world_size);
  if (c.job.deterministic) use_deterministic_algorithms();
  if (const auto precision = fixed_precision(c.precision.amp)) check_precision_supported(*precision, run.device);  // before minutes of decoding
  compat::manual_seed(c.job.seed);
  // --init is read before the data (minutes of decoding), loaded once the classes are known; a
  // resumed run's own weights replace it, so it needs no file then.
  if (!c.model.init.empty() && c.job.resume.empty()) run.init_weights = read_weights_file(c.model.init);
  load_data(run);
  check_ranks_agree(run);
  decide_precision(run);
  plan_steps(run);
  set_loss(run);
  set_stain_normalization(run);
  set_normalization(run);
  build_model(run);
  if (c.parallel.pipeline_stages > 1) cut_into_stages(run);  // after the optimizer: placing keeps the parameters
  decide_cuda_graph(run);
}

void restore(Run& run, RunProgress& p) {
  const fs::path from = run_folder(run.config.job.resume);
  const nlohmann::json meta = read_checkpoint_meta(from);
  if (meta.at("classes").get<std::vector<std::string>>() != run.data.classes)
    throw Error("cannot resume '" + from.string() + "': its classes differ from those found in " + run.data.scan.root);

  p.start_epoch = meta.at("epoch").get<int64_t>();
  p.step = meta.at("step").get<int64_t>();
  const bool had_average =
      load_training_state(from, run.model, *run.optimizer, *run.scaler, p.step,
                          run.average ? &run.average->model() : nullptr, run.config.trust_checkpoint,
                          &run.resumed_reducer_state);
  run.resumed_world = meta.value("world_size", 1);
  run.model->to(run.device);
  if (run.device_stages) place_stages(run.model, *run.device_stages, parse_devices(run.config.parallel.devices));
  if (run.config.precision.channels_last) to_channels_last(*run.model);
  if (run.average) {
    run.average->model()->to(run.device);
    if (run.config.precision.channels_last) to_channels_last(*run.average->model());
    if (!had_average) run.average->reset();  // the saved run had no --ema: start it from here
  }
  if (meta.contains("epoch_progress")) p.resumed_progress = EpochProgress::from_json(meta.at("epoch_progress"));
  const int saved_world = meta.value("world_size", 1);
  if (saved_world != run.world_size()) {
    // Steps per epoch and each rank's share of an epoch depend on the world size: the run
    // continues at the start of the epoch it was in.
    p.step = p.start_epoch * run.steps_per_epoch;
    p.resumed_progress = {};
    run.log("note: the run was saved with " + std::to_string(saved_world) + " rank(s) and continues with " +
            std::to_string(run.world_size()) + "; it resumes at the start of epoch " +
            std::to_string(p.start_epoch + 1) + " (step " + std::to_string(p.step) + ")");
  } else if (p.step != p.start_epoch * run.steps_per_epoch + p.resumed_progress.steps) {
    throw Error("cannot resume '" + from.string() + "': its step " + std::to_string(p.step) +
                " does not fall where this run's epochs of " + std::to_string(run.steps_per_epoch) +
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
