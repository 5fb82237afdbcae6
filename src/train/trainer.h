// Training: one process, one rank of a data-parallel job, or one stage of a pipeline.
//
//   data (tile cache) -> grouped split -> per-epoch order -> augmented batches -> ResNet
//   -> label-smoothed cross-entropy -> SGD (Nesterov, decoupled BN/bias decay) -> LR schedule
//   -> validation every epoch -> metrics.jsonl, checkpoint, summary.json
#pragma once
#include <nlohmann/json.hpp>

#include "train/config.h"

namespace histotrain {

// Trains as `config` says and returns the summary (also written to <out>/summary.json).
nlohmann::json train(const TrainConfig& config);

// For --resume: the saved config of `run`, with `overrides` (fields the user set again) on top.
TrainConfig resumed_config(const std::string& run, const nlohmann::json& overrides);

}  // namespace histotrain
