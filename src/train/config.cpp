#include "train/config.h"

#include <cmath>

#include "core/amp.h"
#include "model/resnet.h"
#include "pipeline/pipeline_schedule.h"
#include "util/errors.h"
#include "util/machine.h"

namespace histotrain {

// One list of fields serves both directions, so the two cannot drift apart.
#define HISTOTRAIN_CONFIG_FIELDS(X)                                                                         \
  X(data) X(groups) X(data_split) X(cache_dir) X(image_size) X(val_fraction) X(workers) X(arch) X(epochs) X(batch_size)  \
  X(lr) X(schedule) X(warmup_epochs) X(momentum) X(weight_decay) X(label_smoothing) X(amp) X(channels_last) X(augment) X(max_shift) \
  X(backend) X(bucket_mb) X(dist_timeout) X(lr_scaling) X(pipeline_stages) X(micro_batches) X(pipeline_schedule) X(virtual_stages) X(split) X(devices) \
  X(threads) X(device) X(seed) X(out) X(resume) X(target_acc) X(max_steps) X(quiet) X(val_images) X(ema) X(tta) \
  X(cuda_graph) X(val_every) X(color_jitter) X(prefetch) X(checkpoint_steps) X(deterministic)

nlohmann::json to_json(const TrainConfig& config) {
  nlohmann::json j;
#define X(field) j[#field] = config.field;
  HISTOTRAIN_CONFIG_FIELDS(X)
#undef X
  return j;
}

TrainConfig config_from_json(const nlohmann::json& j) {
  TrainConfig config;
#define X(field) \
  if (j.contains(#field)) j.at(#field).get_to(config.field);
  HISTOTRAIN_CONFIG_FIELDS(X)
#undef X
  return config;
}

void validate(const TrainConfig& c) {
  auto require = [](bool ok, const std::string& message) {
    if (!ok) throw UsageError(message);
  };
  require(!c.data.empty(), "--data is required");
  require(c.image_size >= 16 && c.image_size <= 1024, "--image-size must be between 16 and 1024");
  require(c.data_split == "group" || c.data_split == "random", "--split must be group, random or a stage cut like 4,7");
  require(c.data_split == "group" || c.groups.empty(), "--split random splits per image: drop --groups");
  require(c.val_fraction >= 0 && c.val_fraction < 1, "--val-fraction must be in [0, 1)");
  require(std::find(supported_archs().begin(), supported_archs().end(), c.arch) != supported_archs().end(),
          "--arch must be one of resnet18, resnet34, resnet50");
  require(c.epochs >= 1, "--epochs must be at least 1");
  require(c.batch_size >= 2, "--batch-size must be at least 2 (BatchNorm needs two images)");
  require(c.lr > 0 && c.lr < 100, "--lr must be positive");
  require(c.schedule == "onecycle" || c.schedule == "cosine", "--schedule must be onecycle or cosine");
  require(c.warmup_epochs >= 0, "--warmup-epochs must be >= 0");
  require(c.momentum >= 0 && c.momentum < 1, "--momentum must be in [0, 1)");
  require(c.weight_decay >= 0, "--weight-decay must be >= 0");
  require(c.label_smoothing >= 0 && c.label_smoothing < 1, "--label-smoothing must be in [0, 1)");
  if (c.amp != "auto") parse_precision(c.amp);  // throws UsageError for anything else
  require(c.max_shift >= 0 && c.max_shift <= 0.25, "--max-shift must be in [0, 0.25]");
  check_thread_count(c.threads, "--threads");
  check_thread_count(c.workers, "--workers");
  // A NaN passes no comparison, but an infinity passes ">= 0": every real-valued flag is finite.
  for (const auto& [flag, value] : {std::pair<const char*, double>{"--val-fraction", c.val_fraction},
                                    {"--lr", c.lr}, {"--warmup-epochs", c.warmup_epochs}, {"--momentum", c.momentum},
                                    {"--weight-decay", c.weight_decay}, {"--label-smoothing", c.label_smoothing},
                                    {"--ema", c.ema}, {"--max-shift", c.max_shift}, {"--color-jitter", c.color_jitter},
                                    {"--bucket-mb", c.bucket_mb}, {"--target-acc", c.target_acc}})
    require(std::isfinite(value), std::string(flag) + " must be a finite number");
  require(c.warmup_epochs <= 1000, "--warmup-epochs must be at most 1000");
  require(c.weight_decay < 1, "--weight-decay must be below 1");
  require(c.backend.empty() || c.backend == "gloo" || c.backend == "nccl", "--backend must be gloo or nccl");
  require(c.backend != "nccl" || c.device.rfind("cuda", 0) == 0, "--backend nccl needs --device cuda; use gloo on CPUs");
  require(c.bucket_mb > 0 && c.bucket_mb <= 1024, "--bucket-mb must be in (0, 1024]");
  require(c.dist_timeout >= 1, "--dist-timeout must be at least 1 second");
  require(c.lr_scaling == "linear" || c.lr_scaling == "none", "--lr-scaling must be linear or none");
  require(c.pipeline_stages >= 1, "--pipeline-stages must be at least 1");
  require(c.micro_batches >= 1 && c.batch_size % c.micro_batches == 0 && c.batch_size / c.micro_batches >= 2,
          "--micro-batches must divide --batch-size into micro-batches of at least 2 images");
  require(c.micro_batches == 1 || c.pipeline_stages > 1, "--micro-batches needs --pipeline-stages 2 or more");
  require(c.devices.empty() || c.pipeline_stages > 1, "--devices needs --pipeline-stages 2 or more");
  parse_pipeline_schedule(c.pipeline_schedule);  // throws UsageError for anything else
  require(c.pipeline_schedule == "gpipe" || c.pipeline_stages > 1, "--pipeline-schedule needs --pipeline-stages 2 or more");
  require(c.virtual_stages >= 1, "--virtual-stages must be at least 1");
  require(c.virtual_stages == 1 || (c.pipeline_stages > 1 && c.devices.empty()),
          "--virtual-stages needs --pipeline-stages 2 or more on ranks (not --devices)");
  require(c.target_acc >= 0 && c.target_acc <= 1, "--target-acc must be in [0, 1]");
  require(c.max_steps >= 0, "--max-steps must be >= 0");
  require(c.color_jitter >= 0 && c.color_jitter <= 0.5, "--color-jitter must be in [0, 0.5]");
  require(c.val_every >= 1, "--val-every must be at least 1");
  require(c.checkpoint_steps >= 0, "--checkpoint-steps must be >= 0 (0: checkpoints with validation only)");
  require(c.ema >= 0 && c.ema < 1, "--ema must be in [0, 1) (0: off)");
  require(c.ema == 0 || c.pipeline_stages == 1, "--ema averages a whole model: not with --pipeline-stages");
  require(c.cuda_graph == "auto" || c.cuda_graph == "on" || c.cuda_graph == "off", "--cuda-graph must be auto, on or off");
  require(c.val_images.empty() || (c.data_split == "group" && c.groups.empty()),
          "--val-images is the split: drop --groups and --split");
}

}  // namespace histotrain
