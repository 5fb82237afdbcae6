// Operating points: one class against the rest at a decision threshold, the way a screening test
// is reported. "Call it lung_aca when its probability is at least 0.30" gives a sensitivity,
// specificity, positive and negative predictive value; a threshold can be given
// (--threshold CLASS=P) or found as the highest one that reaches a sensitivity
// (--target-sensitivity CLASS=S). A threshold found on the same data flatters its own
// sensitivity: the report says so, and the way to use one is to find it on validation and give
// it with --threshold on the test set.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/bootstrap.h"
#include "core/scored_metrics.h"

namespace histotrain {

struct OperatingPointRequest {
  enum class Kind { threshold, target_sensitivity };
  std::string class_name;
  Kind kind = Kind::threshold;
  double value = 0.5;  // the threshold, or the sensitivity to reach; in [0, 1]
};

// "CLASS=VALUE" (the last '=' splits, so a class name may hold one); throws UsageError naming
// `flag` when it is not that or VALUE is not a number in [0, 1].
OperatingPointRequest parse_operating_point(const std::string& text, OperatingPointRequest::Kind kind,
                                            const std::string& flag);

// One entry per request: {class, threshold, chosen_by, positives, negatives, tp, fp, tn, fn,
// sensitivity, specificity, ppv, npv (null where undefined), confidence_intervals: {sensitivity,
// specificity, ppv, npv} by bootstrap over the groups at that threshold}. Throws Error for a
// class the model does not have.
nlohmann::json operating_points_json(const ScoredImages& s, const std::vector<std::string>& classes,
                                     const std::vector<OperatingPointRequest>& requests,
                                     const BootstrapOptions& bootstrap);

}  // namespace histotrain
