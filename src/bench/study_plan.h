// A scaling study's plan: which training configurations to measure on this machine, with the
// same model, image size, global batch and data everywhere, plus the data-loading study and the
// time-to-accuracy runs. Read from JSON (--plan), or made to fit this machine.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "train/config.h"

namespace histotrain {

// One way to train: ranks x threads on CPUs, a precision, a pipeline, or a GPU.
struct StudyConfig {
  std::string name;
  int ranks = 1;                 // processes (data-parallel replicas, or pipeline stages)
  int threads = 1;               // intra-op threads per rank
  bool cuda = false;             // the plan's "device": cpu (false) | cuda (one GPU per rank)
  AmpMode amp = AmpMode::none;   // the plan's "amp": none | bf16 | fp16 | auto
  bool channels_last = false;
  int pipeline_stages = 1;       // > 1: the ranks are pipeline stages
  int micro_batches = 1;
  bool prefetch = false;         // assemble the next batch while the step runs
  bool peer = true;              // also run the Python peer with the same settings, where it can

  // What the speedup is divided by: cores for CPU runs, GPUs for CUDA runs.
  int workers() const { return cuda ? ranks : ranks * threads; }
  const char* device() const { return cuda ? "cuda" : "cpu"; }
  // What the study measures it against: "threads", "ranks", "pipeline", "precision", "gpu", "prefetch".
  std::string method() const;
};

struct StudyPlan {
  ArchName arch;                 // resnet18 unless the plan says otherwise
  int image_size = 64;
  int global_batch = 32;         // the same in every configuration (strong scaling)
  int steps = 20;                // timed optimizer steps per run
  int repeats = 3;               // runs per configuration: median and spread
  std::vector<StudyConfig> configs;
  // Time to accuracy: these configurations train `epochs` epochs with validation after each.
  std::vector<std::string> accuracy_configs;
  int accuracy_epochs = 3;
  double target_acc = 0.9;
  // Data loading: decode + resize of `decode_images` real tiles by threads and by processes.
  int decode_images = 1000;
  std::vector<int> decode_workers;
};

// The usual study on a machine with `cores` cores (and a GPU when `cuda`): serial, threads,
// ranks 2..cores (powers of two and cores), a 2-stage pipeline, bf16 + channels-last, prefetch,
// the GPU; time to accuracy for the serial and the widest CPU configurations.
StudyPlan default_plan(int cores, bool cuda);

nlohmann::json to_json(const StudyPlan& plan);
// Missing fields take their defaults; unknown fields and bad values are UsageErrors.
StudyPlan plan_from_json(const nlohmann::json& j);

// Why this machine cannot run `config` ("" when it can): more cores than it has, no CUDA, ...
std::string infeasible_reason(const StudyConfig& config, const StudyPlan& plan, int cores, bool cuda);
// Why the Python peer cannot run it ("" when it can).
std::string peer_unsupported_reason(const StudyConfig& config);

}  // namespace histotrain
