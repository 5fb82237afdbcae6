// Every knob of a training run in one place, with its default and what it is for. The whole
// struct is saved in each checkpoint and summary, so a result always says how it was made.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace histotrain {

struct TrainConfig {
  // --- data ---
  std::string data;              // dataset root (class = folder directly holding the images)
  std::string groups;            // optional filename,label,group_id CSV: splits keep groups together
  // group: whole source groups go to one side (from --groups, else near-copy groups found from the
  // pixels and cached); random: per image, which leaks near-copies: audited, with a warning.
  std::string data_split = "group";
  std::string val_images;        // a list of tiles (paths or file names) to validate on: someone else's split
  std::string cache_dir;         // tile cache folder (empty: default_cache_dir())
  int image_size = 128;          // tiles are decoded once to this size
  double val_fraction = 0.2;     // share of each class's groups held out for validation
  int workers = 0;               // JPEG decode threads for the cache (0: all cores)
  bool prefetch = false;         // assemble the next batch on a second thread during the step

  // --- model ---
  std::string arch = "resnet18";

  // --- optimisation: SGD with Nesterov momentum ---
  int epochs = 10;
  int batch_size = 32;           // per rank: the global batch is batch_size x world size
  double lr = 0.05;              // peak learning rate for one rank's batch (see lr_scaling)
  std::string schedule = "onecycle";  // warm-up, then linear (onecycle) or cosine decay to 0
  double warmup_epochs = 1.0;    // linear warm-up from lr/10: keeps early BN statistics sane
  double momentum = 0.9;
  double weight_decay = 5e-4;    // on conv/linear weights only, never on BN or biases
  double label_smoothing = 0.1;  // softer targets: better calibrated, less overfit to near-copies

  double ema = 0;                // exponential moving average of the weights, validated and saved (0: off)

  // --- precision and memory layout (bf16 + channels-last: the fast path on CPUs with AVX-512 BF16)
  // none | bf16 | fp16 (fp16: CUDA only, with dynamic loss scaling) | auto: the fastest of fp32,
  // fp32 + channels-last, bf16 + channels-last (and fp16 on CUDA), measured here at the start and
  // cached (train/precision_choice.h); the run then holds the chosen amp and channels_last.
  std::string amp = "none";
  bool channels_last = false;    // NHWC activations and conv weights: what oneDNN and cuDNN prefer
                                 // (with --amp auto: only channels-last candidates)

  // --- augmentation (free for histology: no canonical orientation) ---
  bool augment = true;           // random flips + 90-degree rotations + shifts
  double max_shift = 0.0625;     // random translation, as a fraction of the tile side
  double color_jitter = 0;       // per-channel gain/offset jitter of normalised images (stain variation)

  // --- data parallelism: world size and rank come from the launcher's environment ---
  std::string backend;           // gloo | nccl ("": nccl on CUDA, gloo on CPU)
  double bucket_mb = 25;         // gradient all-reduce bucket size, MiB
  int dist_timeout = 60;         // seconds before a rank that stopped answering fails the run
  std::string lr_scaling = "linear";  // linear: peak lr x world size (Goyal et al., with the warm-up); none

  // --- pipeline model parallelism: rank s of K trains stage s ---
  int pipeline_stages = 1;       // K: needs K ranks (histotrain launch -n K); 1: no pipeline
  int micro_batches = 1;         // M: each batch runs as M micro-batches
  std::string pipeline_schedule = "gpipe";  // gpipe: fill-drain; 1f1b: one forward, one backward (less memory)
  int virtual_stages = 1;        // V: each rank runs V chunks, s, s + K, ... (interleaved); the bubble shrinks ~V-fold
  std::string split;             // "4,7": first unit of each later stage ("": cut on measured cost)
  std::string devices;           // "cuda:0,cuda:1": the stages on these devices inside one process instead

  // --- run ---
  int threads = 0;               // intra-op threads (0: all cores; LibTorch would use 1 here)
  std::string device = "cpu";    // cpu | cuda
  uint64_t seed = 0;
  std::string out = "runs/latest";
  std::string resume;            // run folder to continue from
  // Also resume from a TorchScript train_state.pt (an older version's checkpoint), which can run
  // code. Not a field of the saved config (config.cpp): each command line decides it anew.
  bool trust_checkpoint = false;
  double target_acc = 0;         // stop once validation accuracy reaches this (0: never)
  int val_every = 1;             // validate and checkpoint every N epochs (and after the last one)
  int64_t checkpoint_steps = 0;  // also checkpoint every N steps inside an epoch (0: only with validation)
  bool deterministic = false;    // deterministic kernels only: a resumed run ends with identical weights
  int64_t max_steps = 0;         // stop after this many optimizer steps (0: no limit; benchmarks);
                                 // the LR schedule still spans all epochs
  bool tta = false;              // validate on the mean softmax over the 8 flips/rotations of each tile
  // CUDA graph of the whole train step (forward, backward, update) replayed each step: auto uses
  // it where it applies (CUDA, LibTorch 2.x, one process, no pipeline, no fp16); on requires it.
  std::string cuda_graph = "auto";
  bool quiet = false;            // no progress bars
};

nlohmann::json to_json(const TrainConfig& config);
TrainConfig config_from_json(const nlohmann::json& j);

// Throws UsageError for values that cannot work (negative epochs, lr <= 0, ...).
void validate(const TrainConfig& config);

}  // namespace histotrain
