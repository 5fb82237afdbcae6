// Grouped cross-validation: the source groups split into K folds (stratified by class as far as
// whole groups allow), one ordinary run per fold validating on that fold, and the metrics'
// spread over the folds. Three grouped splits cannot rank two recipes a point apart; K folds
// with a paired comparison (compare_cross_validations) can say how sure the difference is.
//
// DIR (--out) holds folds/fold-K.txt (the file names of each fold), groups.csv (the groups the
// folds were cut from), fold-K/ (each fold's run folder: its figures, and with --keep-models its
// weights), cv.json and cv.md. Run again on the same DIR, cv continues: finished folds are read,
// an unfinished fold with a checkpoint resumes, the others start.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "train/config.h"

namespace histotrain {

// The metrics reported per fold, in the order of the tables.
const std::vector<std::string>& cv_metrics();

struct CrossValidationOutcome {
  nlohmann::json report;  // null when a signal stopped a fold
  int stopped_by = 0;
};

// Trains every fold of `base` (whose data, model and optimiser flags every fold shares) that is
// not done yet, then writes and returns the report: per-fold metrics, mean, sd and 95% CI.
// Without `keep_models` a finished fold keeps its figures only, not its weights.
CrossValidationOutcome cross_validate(const TrainConfig& base, int folds, const std::filesystem::path& out,
                                      bool keep_models = false);

// The paired per-fold differences A - B of each metric, with mean, sd, 95% CI and a verdict.
// Throws Error unless both folders are cv runs over the same folds.
nlohmann::json compare_cross_validations(const std::filesystem::path& a, const std::filesystem::path& b);

// Markdown tables of a cross_validate report and of a comparison.
std::string cv_markdown(const nlohmann::json& report);
std::string comparison_markdown(const nlohmann::json& comparison);

}  // namespace histotrain
