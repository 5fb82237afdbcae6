// An evaluation's report folder (`eval --report DIR`): report.md (core/evaluation_text.h),
// report.json, and the pictures a pathologist reads, drawn by gnuplot:
//   confusion.png    counts and the percentage of each true class, classes named on both axes
//   roc.png          each class against the rest, its AUC and 95% interval in the legend, and a
//                    95% band from the same group bootstrap as the intervals
//   reliability.png  accuracy against confidence before and after the temperature, the diagonal
//                    labelled "perfect calibration", bins holding few tiles drawn hollow, and
//                    the tiles per bin in a panel below
//   confusion_by_group.png  the confusion matrix per group (patient), where there is one
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/scored_metrics.h"

namespace histotrain {

// Bins of the reliability diagram holding fewer tiles than this are drawn hollow.
constexpr int64_t kFewTilesInBin = 20;

// `report`: evaluation_report's; `raw` and `calibrated`: the images at temperature 1 and at the
// report's temperature. Returns the markdown it wrote.
std::string write_evaluation_report(const nlohmann::json& report, const ScoredImages& raw,
                                    const ScoredImages& calibrated, const std::vector<std::string>& classes,
                                    const std::filesystem::path& dir);

// TPR of class k's ROC curve at each false positive rate of `grid` (ascending, in [0, 1]),
// linear between the curve's points; images weighted as a bootstrap resample draws them.
std::vector<double> roc_tpr_at(const ScoredImages& s, int64_t k, const std::vector<int64_t>& order,
                               const ImageWeights& weights, const std::vector<double>& grid);

}  // namespace histotrain
