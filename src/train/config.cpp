#include "train/config.h"

#include <cmath>
#include <type_traits>

#include "data/manifest.h"
#include "distributed/grad_compression.h"
#include "model/resnet.h"
#include "pipeline/stage_plan.h"
#include "train/config_fields.h"
#include "util/errors.h"
#include "util/machine.h"
#include "util/text_form.h"

namespace histotrain {

std::optional<Precision> fixed_precision(AmpMode mode) {
  switch (mode) {
    case AmpMode::none: return Precision::fp32;
    case AmpMode::bf16: return Precision::bf16;
    case AmpMode::fp16: return Precision::fp16;
    default: return std::nullopt;
  }
}

AmpMode amp_mode_of(Precision precision) {
  switch (precision) {
    case Precision::bf16: return AmpMode::bf16;
    case Precision::fp16: return AmpMode::fp16;
    default: return AmpMode::none;
  }
}

std::string backend_request(Backend backend) { return backend == Backend::automatic ? "" : spelling(backend); }

namespace {

struct FieldWriter {
  nlohmann::json& j;
  template <class T>
  void operator()(const FieldInfo& info, const T& field) const {
    if constexpr (std::is_enum_v<T>)
      j[info.key] = spelling(field);
    else if constexpr (has_text_form<T>)
      j[info.key] = field.text();
    else
      j[info.key] = field;
  }
};

struct FieldReader {
  const nlohmann::json& j;
  template <class T>
  void operator()(const FieldInfo& info, T& field) const {
    if (!j.contains(info.key)) return;
    const nlohmann::json& value = j.at(info.key);
    if constexpr (std::is_enum_v<T>) {
      const auto parsed = value.is_string() ? from_spelling<T>(value.get<std::string>()) : std::nullopt;
      if (!parsed)
        throw Error("configuration: '" + std::string(info.key) + "' is " + value.dump() + ", not one of " +
                    spelling_choices<T>());
      field = *parsed;
    } else if constexpr (has_text_form<T>) {
      const auto parsed = value.is_string() ? T::parse(value.get<std::string>()) : std::nullopt;
      if (!parsed) throw Error("configuration: '" + std::string(info.key) + "' is " + value.dump() + ", not valid");
      field = *parsed;
    } else {
      value.get_to(field);
    }
  }
};

// Files written before a field was renamed or its spelling changed.
nlohmann::json upgraded(nlohmann::json j) {
  if (j.contains("split") && !j.contains("stage_cut")) {  // the pipeline cut shared --split's name
    j["stage_cut"] = j["split"];
    j.erase("split");
  }
  if (j.value("backend", std::string("auto")).empty()) j["backend"] = "auto";  // "" meant auto
  return j;
}

}  // namespace

nlohmann::json to_json(const TrainConfig& config) {
  nlohmann::json j = nlohmann::json::object();
  for_each_field(config, FieldWriter{j});
  return j;
}

TrainConfig config_from_json(const nlohmann::json& saved) {
  const nlohmann::json j = upgraded(saved);
  TrainConfig config;
  for_each_field(config, FieldReader{j});
  return config;
}

nlohmann::json shared_by_ranks(const TrainConfig& config) {
  nlohmann::json j = to_json(config);
  for_each_field(config, [&j](const FieldInfo& info, const auto&) {
    if (info.per_node) j.erase(info.key);
  });
  return j;
}

namespace {

// The first name of a flag ("--augment" of "--augment,!--no-augment"), or its negated one.
std::string flag_name(std::string_view names, bool negated) {
  if (!negated) return std::string(names.substr(0, names.find(',')));
  const size_t bang = names.find('!');
  if (bang == std::string_view::npos) throw Error(std::string("flag ") + std::string(names) + " cannot be turned off");
  const size_t end = names.find(',', bang);
  return std::string(names.substr(bang + 1, end == std::string_view::npos ? end : end - bang - 1));
}

// Appends a field's flag when its value differs from the default's.
struct FlagWriter {
  const nlohmann::json& defaults;
  const nlohmann::json& values;
  std::vector<std::string>& args;
  template <class T>
  void operator()(const FieldInfo& info, const T&) const {
    const nlohmann::json& value = values.at(info.key);
    if (value == defaults.at(info.key)) return;
    if constexpr (std::is_same_v<T, bool>) {
      args.push_back(flag_name(info.flag, !value.get<bool>()));
    } else {
      args.push_back(flag_name(info.flag, false));
      args.push_back(value.is_string() ? value.get<std::string>() : value.dump());
    }
  }
};

}  // namespace

std::vector<std::string> train_flags(const TrainConfig& config) {
  const nlohmann::json defaults = to_json(TrainConfig{}), values = to_json(config);
  std::vector<std::string> args;
  for_each_field(config, FlagWriter{defaults, values, args});
  return args;
}

namespace {

constexpr int64_t kMaxSteps = 1'000'000'000'000;

void require(bool ok, const std::string& message) {
  if (!ok) throw UsageError(message);
}

void validate_data(const DataConfig& d) {
  require(!d.root.empty() || !d.manifest.empty(), "--data (a folder) or --manifest (a CSV) is required");
  require(d.root.empty() || d.manifest.empty(), "--data and --manifest both name the dataset: give one");
  require(!d.manifest.empty() || (d.manifest_columns.empty() && d.manifest_root.empty()),
          "--columns and --root describe a --manifest: give one");
  (void)parse_manifest_columns(d.manifest_columns);  // a bad pair is a usage error before anything runs
  require(d.val_data.empty() || d.val_images.empty(), "--val-data is the validation set: drop --val-images");
  require(d.val_data.empty() || d.split == DataSplit::group, "--val-data is the split: drop --split");
  require(d.image_size >= 16 && d.image_size <= 1024, "--image-size must be between 16 and 1024");
  require(d.split == DataSplit::group || d.groups.empty(), "--split random splits per image: drop --groups");
  require(d.val_fraction >= 0 && d.val_fraction < 1, "--val-fraction must be in [0, 1)");
  require(d.progressive_from == 0 || (d.progressive_from >= 16 && d.progressive_from < d.image_size),
          "--progressive-from must be 0 (off) or between 16 and --image-size");
  require(d.progressive_until > 0 && d.progressive_until <= 1, "--progressive-until must be in (0, 1]");
  require(d.max_shift >= 0 && d.max_shift <= 0.25, "--max-shift must be in [0, 0.25]");
  require(d.color_jitter >= 0 && d.color_jitter <= 0.5, "--color-jitter must be in [0, 0.5]");
  require(d.mixup >= 0 && d.mixup <= 10 && d.cutmix >= 0 && d.cutmix <= 10, "--mixup and --cutmix must be in [0, 10]");
  require(d.mix_prob >= 0 && d.mix_prob <= 1, "--mix-prob must be in [0, 1]");
  require(d.stain_normalize == StainMethod::none || !d.stain_reference.empty(),
          "--stain-reference must name a tile or 'train'");
  require(d.val_images.empty() || d.split == DataSplit::group, "--val-images is the split: drop --split");
  check_thread_count(d.workers, "--workers");
}

void validate_model(const ModelConfig& m, const TrainConfig& c) {
  require(m.backbone_lr_scale > 0 && m.backbone_lr_scale <= 100,
          "--backbone-lr-scale must be in (0, 100] (a frozen backbone: --freeze-backbone)");
  require(!m.freeze_backbone || m.backbone_lr_scale == 1,
          "--freeze-backbone trains the head alone: drop --backbone-lr-scale");
  require(!m.freeze_backbone || c.parallel.pipeline_stages == 1,
          "--freeze-backbone trains the head alone, one stage's work: not with --pipeline-stages");
  require(!m.freeze_backbone || !m.init.empty() || !c.job.resume.empty(),
          "--freeze-backbone keeps the backbone as it starts: give --init with the weights to keep");
}

void validate_optim(const OptimConfig& o) {
  require(o.epochs >= 1 && o.epochs <= 100000, "--epochs must be from 1 to 100000");
  require(o.time_budget >= 0 && o.time_budget <= 1e7, "--time-budget must be in [0, 1e7] seconds (0: off)");
  require(o.batch_size >= 2 && o.batch_size <= 65536,
          "--batch-size must be from 2 (BatchNorm needs two images) to 65536");
  require(o.accumulate >= 1 && o.accumulate <= 1024, "--accumulate must be from 1 to 1024");
  require(int64_t{o.batch_size} * o.accumulate <= 65536, "--batch-size x --accumulate must be at most 65536");
  require(o.lr > 0 && o.lr < 100, "--lr must be in (0, 100): a learning rate outside it diverges at once");
  require(o.warmup_epochs >= 0 && o.warmup_epochs <= 1000, "--warmup-epochs must be in [0, 1000]");
  require(o.momentum >= 0 && o.momentum < 1, "--momentum must be in [0, 1)");
  require(o.weight_decay >= 0 && o.weight_decay < 1, "--weight-decay must be in [0, 1)");
  require(o.label_smoothing >= 0 && o.label_smoothing < 1, "--label-smoothing must be in [0, 1)");
  require(o.ema >= 0 && o.ema < 1, "--ema must be in [0, 1) (0: off)");
  require(o.clip_grad >= 0 && o.clip_grad <= 1e6, "--clip-grad must be in [0, 1e6] (0: off)");
}

void validate_parallel(const ParallelConfig& p, const TrainConfig& c) {
  require(p.backend != Backend::nccl || c.job.device.cuda,
          "--backend nccl needs --device cuda; use gloo on CPUs");
  require(p.bucket_mb > 0 && p.bucket_mb <= 1024, "--bucket-mb must be in (0, 1024]");
  require(p.dist_timeout >= 1 && p.dist_timeout <= 86400, "--dist-timeout must be from 1 to 86400 seconds");
  require(p.pipeline_stages >= 1 && p.pipeline_stages <= 1024, "--pipeline-stages must be from 1 to 1024");
  require(p.powersgd_start_step >= 0 && p.powersgd_start_step <= kMaxSteps,
          "--powersgd-start-step must be from 0 to 10^12");
  const int batch = c.optim.batch_size;
  require(p.micro_batches >= 1 && batch % p.micro_batches == 0 && batch / p.micro_batches >= 2,
          "--micro-batches must divide --batch-size into micro-batches of at least 2 images");
  const bool pipeline = p.pipeline_stages > 1;
  require(p.micro_batches == 1 || pipeline, "--micro-batches needs --pipeline-stages 2 or more");
  require(p.devices.empty() || pipeline, "--devices needs --pipeline-stages 2 or more");
  require(p.pipeline_schedule == PipelineSchedule::fill_drain || pipeline,
          "--pipeline-schedule needs --pipeline-stages 2 or more");
  require(p.virtual_stages >= 1 && p.virtual_stages <= 64, "--virtual-stages must be from 1 to 64");
  require(p.virtual_stages == 1 || (pipeline && p.devices.empty()),
          "--virtual-stages needs --pipeline-stages 2 or more on ranks (not --devices)");
  require(c.optim.ema == 0 || !pipeline, "--ema averages a whole model: not with --pipeline-stages");
  require(p.stage_cut.empty() || pipeline, "--stage-cut needs --pipeline-stages 2 or more");
  if (!p.stage_cut.empty())  // its errors name --stage-cut, before any data is read
    stage_plan_of(p.stage_cut, resnet_unit_count(c.model.arch.name), p.pipeline_stages * p.virtual_stages);
  require(c.data.progressive_from == 0 || !pipeline,
          "--progressive-from changes the activations' shape, which pipeline stages fix at the start: not with "
          "--pipeline-stages");
}

void validate_job(const JobConfig& j) {
  check_thread_count(j.threads, "--threads");
  require(j.target_acc >= 0 && j.target_acc <= 1, "--target-acc must be in [0, 1]");
  require(j.bootstrap >= 0 && j.bootstrap <= 1000000, "--bootstrap must be in [0, 1000000]");
  require(j.max_steps >= 0 && j.max_steps <= kMaxSteps, "--max-steps must be from 0 (no limit) to 10^12");
  require(j.val_every >= 1 && j.val_every <= 100000, "--val-every must be from 1 to 100000");
  require(j.checkpoint_steps >= 0 && j.checkpoint_steps <= kMaxSteps,
          "--checkpoint-steps must be from 0 (checkpoints with validation only) to 10^12");
}

// A NaN passes no comparison, but an infinity passes ">= 0": every real-valued flag is finite.
void require_finite_numbers(const TrainConfig& c) {
  for_each_field(c, [](const FieldInfo& info, const auto& field) {
    if constexpr (std::is_floating_point_v<std::decay_t<decltype(field)>>)
      require(std::isfinite(field), std::string(info.flag) + " must be a finite number");
  });
}

}  // namespace

// Mixed targets and clipped gradients live in the one-process step: pipeline stages split the
// loss and the gradients over ranks.
void validate_recipe_pieces(const TrainConfig& c) {
  const bool mixing = c.data.mixup > 0 || c.data.cutmix > 0;
  require(!mixing || c.parallel.pipeline_stages == 1, "--mixup and --cutmix do not work with --pipeline-stages yet");
  require(c.optim.clip_grad == 0 || c.parallel.pipeline_stages == 1,
          "--clip-grad does not work with --pipeline-stages yet (the norm would need every stage's gradients)");
  require(c.optim.accumulate == 1 || c.parallel.pipeline_stages == 1,
          "--accumulate does not combine with --pipeline-stages: a pipeline already accumulates its --micro-batches");
  require(!mixing || c.optim.balance != ClassBalance::loss,
          "--mixup and --cutmix mix the targets: use --balance sampler rather than loss");
}

void validate(const TrainConfig& c) {
  validate_recipe_pieces(c);
  require_finite_numbers(c);
  validate_data(c.data);
  validate_model(c.model, c);
  validate_optim(c.optim);
  validate_parallel(c.parallel, c);
  validate_job(c.job);
  require(c.job.keep == KeptWeights::last || c.data.val_fraction > 0 || !c.data.val_data.empty() ||
              !c.data.val_images.empty() || !c.data.manifest.empty(),
          "--keep best keeps the weights of the best validation: it needs a validation split (--val-fraction > 0)");
}

}  // namespace histotrain
