// The spread of a metric over cross-validation folds, and 95% intervals that stay inside the
// metric's range. A plain t interval (mean ± t·sd/√n) over five folds of accuracy 0.2-1.0 reaches
// past 1; so each value is first taken to a scale on which the metric is unbounded (logit for
// metrics in [0, 1], log for log-loss, atanh for differences of [0, 1] metrics), the t interval
// is formed there, and its ends are taken back. The ends then always lie inside the range; the
// reported mean stays the plain mean of the folds.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace histotrain {

// The range a metric lives in, which decides the scale its interval is formed on.
enum class MetricRange {
  unit,        // [0, 1]: accuracy, AUC, F1, ECE; logit scale
  positive,    // [0, inf): log-loss; log scale
  difference,  // [-1, 1]: A - B of two [0, 1] metrics; atanh scale
  real,        // any value: the plain t interval
};

// Values this close to a bound are moved in by it before the transform: a fold at exactly 1.0
// would otherwise be at an infinite logit.
constexpr double kRangeMargin = 1e-3;

// Two-sided 95% quantile of Student's t with `df` degrees of freedom.
double t_quantile_975(int df);

// {"mean", "sd", "ci": [low, high], "n", "ci_method"} of `values` (sd and ci null below 2 values).
nlohmann::json spread(const std::vector<double>& values, MetricRange range = MetricRange::real);

// What spread's interval is, in words, for reports.
std::string interval_method(MetricRange range);

}  // namespace histotrain
