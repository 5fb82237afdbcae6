// Every knob of a training run, in groups, with its default and what it is for. The whole
// configuration is saved in each checkpoint and summary, so a result always says how it was made.
// Each field's flag, JSON key and help text are listed once, in train/config_fields.h: the
// command line, checkpoint.json, --resume and the ranks' agreement check all come from there.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/amp.h"
#include "data/stain.h"
#include "data/stain_normalization.h"
#include "distributed/grad_compression.h"
#include "core/runtime.h"
#include "core/schedule.h"
#include "model/resnet.h"
#include "pipeline/pipeline_schedule.h"
#include "pipeline/stage_plan.h"
#include "util/enum_names.h"

namespace histotrain {

// group: whole source groups go to one side (from --groups, else near-copy groups found from the
// pixels and cached); random: per image, which leaks near-copies: audited, with a warning.
enum class DataSplit { group, random };
template <>
struct Spellings<DataSplit> {
  static constexpr std::pair<DataSplit, const char*> all[] = {{DataSplit::group, "group"},
                                                              {DataSplit::random, "random"}};
};

// none | bf16 | fp16 (fp16: CUDA only, with dynamic loss scaling) | auto: the fastest of fp32,
// fp32 + channels-last, bf16 + channels-last (and fp16 on CUDA), measured here at the start and
// cached (train/precision_choice.h); the run then holds the chosen amp and channels_last.
enum class AmpMode { none, bf16, fp16, automatic };
template <>
struct Spellings<AmpMode> {
  static constexpr std::pair<AmpMode, const char*> all[] = {
      {AmpMode::none, "none"}, {AmpMode::bf16, "bf16"}, {AmpMode::fp16, "fp16"}, {AmpMode::automatic, "auto"}};
};
// The precision a fixed mode computes in; nothing for auto, which is decided by measuring.
std::optional<Precision> fixed_precision(AmpMode mode);
AmpMode amp_mode_of(Precision precision);

enum class Backend { automatic, gloo, nccl };  // automatic: nccl on CUDA, gloo on CPU
template <>
struct Spellings<Backend> {
  static constexpr std::pair<Backend, const char*> all[] = {
      {Backend::automatic, "auto"}, {Backend::gloo, "gloo"}, {Backend::nccl, "nccl"}};
};
// The name the communicator takes ("" lets it pick by device).
std::string backend_request(Backend backend);

// linear: peak lr x world size (Goyal et al., with the warm-up); none: the same lr at any size.
enum class LrScaling { linear, none };
template <>
struct Spellings<LrScaling> {
  static constexpr std::pair<LrScaling, const char*> all[] = {{LrScaling::linear, "linear"},
                                                              {LrScaling::none, "none"}};
};

// A CUDA graph of the whole train step (forward, backward, update) replayed each step: auto uses
// it where it applies (CUDA, LibTorch 2.x, one process, no pipeline, no fp16); on requires it.
enum class CudaGraphMode { automatic, on, off };
template <>
struct Spellings<CudaGraphMode> {
  static constexpr std::pair<CudaGraphMode, const char*> all[] = {
      {CudaGraphMode::automatic, "auto"}, {CudaGraphMode::on, "on"}, {CudaGraphMode::off, "off"}};
};

// How convolution weight gradients are taken on CPUs (model/conv_weight_grad.h).
enum class ConvGradMode { automatic, native };
template <>
struct Spellings<ConvGradMode> {
  static constexpr std::pair<ConvGradMode, const char*> all[] = {{ConvGradMode::automatic, "auto"},
                                                                  {ConvGradMode::native, "native"}};
};

// Classes of very different sizes (data/class_balance.h): sampler draws each class equally often
// in every epoch (same epoch length); loss weights each class's cross-entropy by its inverse
// frequency among the training images.
enum class ClassBalance { none, sampler, loss };
template <>
struct Spellings<ClassBalance> {
  static constexpr std::pair<ClassBalance, const char*> all[] = {
      {ClassBalance::none, "none"}, {ClassBalance::sampler, "sampler"}, {ClassBalance::loss, "loss"}};
};

// What inputs are normalised with: ImageNet's per-channel mean and standard deviation (what
// pretrained torchvision and timm ResNets expect), or the training tiles' own (measured at the
// start). Saved in checkpoint.json, so eval and predict normalise as training did.
enum class InputNormalization { imagenet, dataset };
template <>
struct Spellings<InputNormalization> {
  static constexpr std::pair<InputNormalization, const char*> all[] = {{InputNormalization::imagenet, "imagenet"},
                                                                       {InputNormalization::dataset, "dataset"}};
};

// Named recipes (train/recipes.h): flags chosen and measured for one purpose.
enum class Recipe { none, cpu_fast };
template <>
struct Spellings<Recipe> {
  static constexpr std::pair<Recipe, const char*> all[] = {{Recipe::none, "none"}, {Recipe::cpu_fast, "cpu-fast"}};
};

// Which weights model.safetensors keeps: the last validated ones, or those of the validation with
// the best accuracy (checkpoint.json's "weights" says which epoch). --resume always continues
// from the last state (train_state.safetensors).
enum class KeptWeights { last, best };
template <>
struct Spellings<KeptWeights> {
  static constexpr std::pair<KeptWeights, const char*> all[] = {{KeptWeights::last, "last"},
                                                                {KeptWeights::best, "best"}};
};

struct DataConfig {
  std::string root;              // dataset root (class = folder directly holding the images), or
  std::string manifest;          // a CSV of path,label[,group][,split] (data/manifest.h)
  std::string manifest_columns;  // "label=diagnosis,...": the manifest's own column names ("": path,label,group,split)
  std::string manifest_root;     // the folder its relative paths start from ("": the manifest's folder)
  std::string val_data;          // a second folder: the dataset's own validation set
  std::string groups;            // optional filename,label,group_id CSV: splits keep groups together
  DataSplit split = DataSplit::group;
  std::string val_images;        // a list of tiles (paths or file names) to validate on: someone else's split
  std::string cache_dir;         // tile cache folder (empty: default_cache_dir())
  int image_size = 128;          // tiles are decoded once to this size
  // Progressive resizing (train/resolution_schedule.h): the side grows from this (0: off) to
  // image_size over the first progressive_until share of training.
  int progressive_from = 0;
  double progressive_until = 0.75;
  double val_fraction = 0.2;     // share of each class's groups held out for validation
  int workers = 0;               // image decode threads for the cache (0: all cores)
  bool prefetch = false;         // assemble the next batch on a second thread during the step
  // Augmentation, free for histology: tiles have no canonical orientation.
  bool augment = true;           // random flips + 90-degree rotations + shifts
  double max_shift = 0.0625;     // random translation, as a fraction of the tile side
  double color_jitter = 0;       // per-channel gain/offset jitter of normalised images (stain variation)
  InputNormalization normalize = InputNormalization::imagenet;
  StainAugment stain_augment;    // HED augmentation in the batch gather (data/stain.h)
  double mixup = 0;              // Beta(a, a) of mixup (0: off); data/batches.h
  double cutmix = 0;             // Beta(a, a) of CutMix (0: off)
  double mix_prob = 1;           // share of batches mixed when either is on
  // Stain normalisation (data/stain_normalization.h) to a reference fitted from a tile file, or
  // from the training tiles ("train"); saved in checkpoint.json and applied by eval and predict.
  StainMethod stain_normalize = StainMethod::none;
  std::string stain_reference = "train";
};

struct ModelConfig {
  ArchName arch;                  // one of model/resnet.h's supported_archs(); resnet18 by default
  std::string init;               // weights to start from (core/initial_weights.h); "": random
  bool freeze_backbone = false;   // train the classifier head only: a linear probe
  double backbone_lr_scale = 1;   // every layer but the head learns at this share of the scheduled rate
};

// SGD with Nesterov momentum, a warm-up and a decay.
struct OptimConfig {
  int epochs = 10;
  // Lay the schedule over this much training time instead of the epochs, and stop when it is
  // spent (train/time_budget.h); 0: off.
  double time_budget = 0;
  int batch_size = 32;           // per rank and forward pass: the global batch is batch_size x accumulate x world size
  int accumulate = 1;            // micro-batches of batch_size whose gradients make one update
  double lr = 0.05;              // peak learning rate for one rank's batch (see lr_scaling)
  ScheduleShape schedule = ScheduleShape::onecycle;
  double warmup_epochs = 1.0;    // linear warm-up from lr/10: keeps early BN statistics sane
  double momentum = 0.9;
  double weight_decay = 5e-4;    // on conv/linear weights only, never on BN or biases
  double label_smoothing = 0.1;  // softer targets: better calibrated, less overfit to near-copies
  ClassBalance balance = ClassBalance::none;
  double ema = 0;                // exponential moving average of the weights, validated and saved (0: off)
  double clip_grad = 0;          // largest global L2 norm of the gradients at each update (0: off)
  LrScaling lr_scaling = LrScaling::linear;
};

// Precision and memory layout (bf16 + channels-last: the fast path on CPUs with AVX-512 BF16).
struct PrecisionConfig {
  AmpMode amp = AmpMode::none;
  bool channels_last = false;    // NHWC activations and conv weights: what oneDNN and cuDNN prefer
                                 // (with --amp auto: only channels-last candidates)
  CudaGraphMode cuda_graph = CudaGraphMode::automatic;
  // auto: per shape, the faster of LibTorch's kernel and a GEMM (fp32 on CPU, not deterministic)
  ConvGradMode conv_grad = ConvGradMode::automatic;
};

// Data parallelism (world size and rank come from the launcher's environment) and pipeline
// model parallelism (rank s of K trains stage s).
struct ParallelConfig {
  Backend backend = Backend::automatic;
  double bucket_mb = 25;         // gradient all-reduce bucket size, MiB
  CompressionChoice grad_compression;  // none | fp16 | bf16 | powersgd[:RANK] (distributed/grad_compression.h)
  int64_t powersgd_start_step = 10;       // PowerSGD: optimizer steps with uncompressed gradients first
  int dist_timeout = 60;         // seconds before a rank that stopped answering fails the run
  int pipeline_stages = 1;       // K: needs K ranks (histotrain launch -n K); 1: no pipeline
  int micro_batches = 1;         // M: each batch runs as M micro-batches
  PipelineSchedule pipeline_schedule = PipelineSchedule::fill_drain;
  int virtual_stages = 1;        // V: each rank runs V chunks, s, s + K, ... (interleaved); the bubble shrinks ~V-fold
  StageCut stage_cut;            // "4,7": first unit of each later stage (empty: cut on measured cost)
  DeviceList devices;            // "cuda:0,cuda:1": the stages on these devices inside one process instead
};

// Where the run goes, how long, how often it reports and saves.
struct JobConfig {
  int threads = 0;               // intra-op threads (0: all cores; LibTorch would use 1 here)
  DeviceName device;             // cpu (the default) | cuda | cuda:N
  uint64_t seed = 0;
  std::string out = "runs/latest";
  std::string resume;            // run folder to continue from
  double target_acc = 0;         // stop once validation accuracy reaches this (0: never)
  int val_every = 1;             // validate and checkpoint every N epochs (and after the last one)
  int64_t checkpoint_steps = 0;  // also checkpoint every N steps inside an epoch (0: only with validation)
  bool deterministic = false;    // deterministic kernels only: a resumed run ends with identical weights
  int64_t max_steps = 0;         // stop after this many optimizer steps (0: no limit; benchmarks);
                                 // the LR schedule still spans all epochs
  bool tta = false;              // validate on the mean softmax over the 8 flips/rotations of each tile
  int bootstrap = 2000;          // resamples of source groups for the validation's confidence intervals (0: none)
  bool quiet = false;            // no progress bars
  bool tensorboard = false;      // also write each epoch's record as TensorBoard scalars in the run folder
  Recipe recipe = Recipe::none;  // the recipe the run started from (its flags are in the fields above)
  KeptWeights keep = KeptWeights::last;  // the weights model.safetensors holds
};

struct TrainConfig {
  DataConfig data;
  ModelConfig model;
  OptimConfig optim;
  PrecisionConfig precision;
  ParallelConfig parallel;
  JobConfig job;
  // Also resume from a TorchScript train_state.pt (an older version's checkpoint), which can run
  // code. Not saved with the rest: each command line decides it anew.
  bool trust_checkpoint = false;
};

// The saved form: one flat object keyed by each field's name (config_fields.h).
nlohmann::json to_json(const TrainConfig& config);
// Reads what to_json wrote, and older versions' files; fields missing keep their defaults.
TrainConfig config_from_json(const nlohmann::json& j);
// The fields that shape a run's collectives, for ranks to compare: the saved form without the
// fields that may differ between nodes (paths, threads, output).
nlohmann::json shared_by_ranks(const TrainConfig& config);
// The `train` flags that make `config` from the defaults: one flag (and its value) per field that
// differs, named by the field table, so that a program that starts training runs (the scaling
// study) builds a TrainConfig, never strings of flags.
std::vector<std::string> train_flags(const TrainConfig& config);

// Throws UsageError for values that cannot work (negative epochs, lr <= 0, ...).
void validate(const TrainConfig& config);

}  // namespace histotrain
