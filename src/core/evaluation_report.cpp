#include "core/evaluation_report.h"

#include <cstdio>

#include "core/calibration.h"

namespace histotrain {

ScoredImages scored_at(const EvalResult& result, const std::vector<int64_t>& labels,
                       const std::vector<std::string>& groups, double temperature) {
  const torch::Tensor probabilities = probabilities_at(result.view_logits, temperature);
  const float* p = probabilities.data_ptr<float>();
  return scored_images(std::vector<float>(p, p + probabilities.numel()), labels, groups,
                       result.view_logits.size(2));
}

namespace {

// The per-group section: what the per-tile report says, over the groups' units.
nlohmann::json by_group_report(const ScoredImages& reported, const std::vector<std::string>& groups,
                               const std::vector<std::string>& classes, const ReportOptions& options) {
  const GroupScores g = scores_by_group(reported, groups);
  nlohmann::json report = probability_metrics_json(g.units, classes);
  report.erase("reliability");
  report["aggregation"] = kGroupAggregation;
  report["groups"] = g.units.group_count;
  report["units"] = g.units.size();
  report["mixed_label_groups"] = g.mixed_label_groups;
  nlohmann::json intervals = bootstrap_intervals(g.units, options.bootstrap);
  if (intervals.is_object()) {
    intervals["unit"] = "group";
    intervals.erase("note");
  }
  report["confidence_intervals"] = intervals;
  const ConfusionMatrix vote = vote_confusion(g);
  report["majority_vote"] = {{"rule", "the class most of the group's tiles predict (ties: the higher mean probability)"},
                             {"accuracy", vote.accuracy()},
                             {"balanced_accuracy", vote.balanced_accuracy()},
                             {"macro_f1", vote.macro_f1()},
                             {"confusion_matrix", vote.to_json(classes)["confusion_matrix"]}};
  if (!options.operating_points.empty())
    report["operating_points"] = operating_points_json(g.units, classes, options.operating_points, options.bootstrap);
  return report;
}

}  // namespace

nlohmann::json evaluation_report(const EvalResult& result, const std::vector<int64_t>& labels,
                                 const std::vector<std::string>& groups, const std::vector<std::string>& classes,
                                 const ReportOptions& options) {
  const ScoredImages raw = scored_at(result, labels, groups, 1.0);
  const ScoredImages calibrated = scored_at(result, labels, groups, options.temperature);
  const ScoredImages& reported = options.apply_temperature ? calibrated : raw;
  nlohmann::json report = probability_metrics_json(reported, classes);
  report["loss"] = result.loss;
  report["calibration"] = {{"temperature", options.temperature},
                           {"from", options.temperature_from.empty() ? "none" : options.temperature_from},
                           {"applied", options.apply_temperature},
                           {"ece_before", reliability(raw).ece},
                           {"ece_after", reliability(calibrated).ece},
                           {"log_loss_before", log_loss(raw)},
                           {"log_loss_after", log_loss(calibrated)},
                           {"ece_bins", 15}};
  report["confidence_intervals"] = bootstrap_intervals(reported, options.bootstrap);
  if (!options.operating_points.empty())
    report["operating_points"] = operating_points_json(reported, classes, options.operating_points, options.bootstrap);
  if (options.by_group && groups_gather_tiles(reported))
    report["by_group"] = by_group_report(reported, groups, classes, options);
  return report;
}

std::string evaluation_line(const nlohmann::json& report) {
  const auto number = [](const nlohmann::json& v, const char* format) {
    if (!v.is_number()) return std::string("n/a");
    char text[32];
    std::snprintf(text, sizeof text, format, v.get<double>());
    return std::string(text);
  };
  std::string line = "balanced acc " + number(report["balanced_accuracy"], "%.4f") + ", macro-AUC " +
                     number(report["macro_auc"], "%.4f");
  const auto& ci = report["confidence_intervals"];
  if (ci.is_object() && ci["macro_auc"].is_array())
    line += " (95% CI " + number(ci["macro_auc"][0], "%.4f") + "-" + number(ci["macro_auc"][1], "%.4f") + " over " +
            std::to_string(ci["units"].get<int64_t>()) + " " + ci["unit"].get<std::string>() + "s)";
  const auto& calibration = report["calibration"];
  line += ", ECE " + number(calibration["ece_before"], "%.3f");
  if (calibration["from"] != "none")
    line += " (" + number(calibration["ece_after"], "%.3f") + " at temperature " +
            number(calibration["temperature"], "%.2f") + ")";
  return line;
}

}  // namespace histotrain
