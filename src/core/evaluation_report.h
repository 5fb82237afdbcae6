// What eval and validation report from one evaluation: the confusion matrix's metrics, the
// probability metrics (ROC-AUC, average precision, log-loss, calibration), the temperature's effect,
// and confidence intervals by bootstrap over source groups. One function, so that a run's
// summary.json and `histotrain eval --json` say the same things the same way.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/bootstrap.h"
#include "core/evaluate.h"
#include "core/group_scores.h"
#include "core/operating_points.h"
#include "core/scored_metrics.h"

namespace histotrain {

// The images of an evaluation with their probabilities at `temperature`. `labels` and `groups`
// (empty: each image its own) are those of the evaluated items, in their order.
ScoredImages scored_at(const EvalResult& result, const std::vector<int64_t>& labels,
                       const std::vector<std::string>& groups, double temperature);

struct ReportOptions {
  double temperature = 1.0;      // the calibration's temperature: its ECE and log-loss are reported
  std::string temperature_from;  // where it came from, e.g. "fitted on this validation split"
  bool apply_temperature = false;  // the metrics and probabilities reported are those at the temperature
  BootstrapOptions bootstrap;
  bool by_group = true;  // also report per group (patient), where some group has several tiles
  std::vector<OperatingPointRequest> operating_points;
};

// probability_metrics_json (at the temperature where applied, else as the model gives them), with
// "loss" (the cross-entropy of the tiles as they are), "calibration" ({temperature, from, applied,
// ece_before, ece_after, log_loss_before, log_loss_after, ece_bins}: before is at temperature 1)
// "confidence_intervals" (bootstrap_intervals of the reported metrics), "operating_points" (when
// asked for) and "by_group": the same metrics, intervals and operating points over the groups'
// units (core/group_scores.h), with "majority_vote" beside them (when options.by_group and some
// group gathers several tiles).
nlohmann::json evaluation_report(const EvalResult& result, const std::vector<int64_t>& labels,
                                 const std::vector<std::string>& groups, const std::vector<std::string>& classes,
                                 const ReportOptions& options);

// One line: "balanced acc 0.93, macro-AUC 0.991 (95% CI 0.984-0.996, 120 source groups), ECE 0.041 -> 0.012".
std::string evaluation_line(const nlohmann::json& report);

}  // namespace histotrain
