// Training: one process, one rank of a data-parallel job, or one stage of a pipeline.
//
//   data (tile cache) -> grouped split -> per-epoch order -> augmented batches -> ResNet
//   -> label-smoothed cross-entropy -> SGD (Nesterov, decoupled BN/bias decay) -> LR schedule
//   -> validation every epoch -> metrics.jsonl, checkpoint, summary.json
#pragma once
#include <nlohmann/json.hpp>

#include "train/config.h"

namespace histotrain {

// The flags a run was started with, written before any work: `--resume` on a run stopped
// before its first checkpoint starts it again with them.
inline constexpr const char* kRunConfigFile = "run_config.json";

struct TrainOutcome {
  nlohmann::json summary;  // rank 0 of a finished run (also in <out>/summary.json); null otherwise
  int stopped_by = 0;      // SIGINT or SIGTERM when the run stopped early for it (a checkpoint holds its steps)
};

// Trains as `config` says.
TrainOutcome train(const TrainConfig& config);

// For --resume: the saved config of `run`, with `overrides` (fields the user set again) on top.
TrainConfig resumed_config(const std::string& run, const nlohmann::json& overrides);

}  // namespace histotrain
