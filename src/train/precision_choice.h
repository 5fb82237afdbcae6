// --amp auto: which precision and memory layout train fastest here. Whether bf16 pays depends on
// the CPU and on LibTorch's kernels, not on the program (faster than fp32 on one machine, slower
// on another: docs/performance.md), so it is measured: a few timed steps of each candidate on the run's own model, image
// size and batch, the fastest kept. Like cuDNN's benchmark mode, the decision is cached per machine,
// LibTorch version, model, image size, batch and threads, and later runs reuse it. Every rank of a
// job takes rank 0's decision.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/amp.h"

namespace histotrain {

class Communicator;

struct PrecisionCandidate {
  Precision precision = Precision::fp32;
  bool channels_last = false;
  std::string name() const;  // "fp32", "fp32+channels-last", "bf16+channels-last", ...
  bool operator==(const PrecisionCandidate& o) const {
    return precision == o.precision && channels_last == o.channels_last;
  }
};

// fp32, fp32 + channels-last and bf16 + channels-last; on CUDA also fp16 + channels-last.
// `channels_last_only` (--channels-last given): only the channels-last ones.
std::vector<PrecisionCandidate> precision_candidates(const torch::Device& device, bool channels_last_only);

// What a decision holds for: the cache key. Any field that differs means measuring again.
struct PrecisionProblem {
  std::string machine;        // CPU model and instruction sets, usable cores; the GPU's name on CUDA
  std::string torch_version;
  std::string device;         // "cpu", "cuda"
  std::string arch;
  int image_size = 0;
  int batch_size = 0;         // images in one forward pass (a micro-batch under a pipeline)
  int threads = 0;            // intra-op threads of each rank
  int ranks_on_node = 1;      // ranks sharing the machine's cores
  bool tuned_conv_grads = false;  // fp32 CPU steps take the tuned convolution weight gradients (--conv-grad auto)
  std::vector<PrecisionCandidate> candidates;
  nlohmann::json key() const;
};

struct PrecisionDecision {
  PrecisionCandidate chosen;
  std::vector<double> images_per_second;  // per candidate, as measured (from the cache: as measured then)
  bool from_cache = false;
  double seconds = 0;  // what deciding took (the measurement, or reading the cache)
  int rounds = 0;      // timed rounds measured (0: from the cache)
  bool stable = true;  // the rounds agreed and the winner's steps spread little: cached
  double spread = 1;   // the winner's slowest timed step over its fastest
  // "bf16+channels-last (measured: fp32 41.2, fp32+channels-last 44.0, bf16+channels-last 80.1 images/s)"
  std::string describe(const std::vector<PrecisionCandidate>& candidates) const;
  nlohmann::json to_json(const std::vector<PrecisionCandidate>& candidates) const;
};

// Seconds one training step (forward, loss, backward) takes with a candidate; injected in tests.
using StepTimer = std::function<double(const PrecisionCandidate&)>;

// Times steps of a fresh `arch` model on random images of the run's shape (a model per candidate,
// built at its first call). Leaves the global random generators as it found them, so the run that
// follows trains exactly as with a fixed --amp. `tuned_conv_grads`: fp32 channels-first candidates
// on a CPU take the tuned convolution weight gradients, as the run will.
StepTimer model_step_timer(const std::string& arch, int64_t classes, int batch_size, int image_size,
                           const torch::Device& device, bool tuned_conv_grads = false);

// The candidate to keep: the fastest, except that one replaces an earlier (simpler, more precise)
// candidate only when it is at least `margin` faster; within noise full precision stays.
size_t fastest_candidate(const std::vector<double>& images_per_second, double margin = 0.03);

// Where decisions are cached: $HISTOTRAIN_CACHE (the tile cache's folder) / precision.json.
std::filesystem::path default_precision_cache();

// The decision for `problem`: from `cache_file` when it holds one (rank 0 reads it), else measured
// with `timer` by every rank at once (so the cores are as busy as in training) and decided from
// rank 0's figures; then given to every rank. `comm` null: one process. Measuring: a first step of
// each candidate, then 3 to 8 rounds of one timed step each, more while the rounds disagree or
// the winner's steps spread; candidates that cannot win are dropped on the way. A decision that
// did not settle is used but not cached (see precision_choice.cpp).
PrecisionDecision choose_precision(const PrecisionProblem& problem, const StepTimer& timer,
                                   const std::filesystem::path& cache_file, Communicator* comm);

}  // namespace histotrain
