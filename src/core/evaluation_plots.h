// An evaluation's report folder (`eval --report DIR`): report.md with the metrics, their 95%
// intervals and the calibration, report.json, and gnuplot's roc.png (each class against the
// rest) and reliability.png (accuracy against confidence, at temperature 1 and at the
// checkpoint's temperature).
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/scored_metrics.h"

namespace histotrain {

// `report`: evaluation_report's; `raw` and `calibrated`: the images at temperature 1 and at the
// report's temperature. Returns the markdown it wrote.
std::string write_evaluation_report(const nlohmann::json& report, const ScoredImages& raw,
                                    const ScoredImages& calibrated, const std::vector<std::string>& classes,
                                    const std::filesystem::path& dir);

}  // namespace histotrain
