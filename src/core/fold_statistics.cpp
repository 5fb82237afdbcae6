#include "core/fold_statistics.h"

#include <algorithm>
#include <cmath>

namespace histotrain {

namespace {

double to_scale(double v, MetricRange range) {
  switch (range) {
    case MetricRange::unit: {
      const double p = std::clamp(v, kRangeMargin, 1 - kRangeMargin);
      return std::log(p / (1 - p));
    }
    case MetricRange::positive:
      return std::log(std::max(v, kRangeMargin));
    case MetricRange::difference:
      return std::atanh(std::clamp(v, -1 + kRangeMargin, 1 - kRangeMargin));
    case MetricRange::real:
      break;
  }
  return v;
}

double from_scale(double v, MetricRange range) {
  switch (range) {
    case MetricRange::unit:
      return 1 / (1 + std::exp(-v));
    case MetricRange::positive:
      return std::exp(v);
    case MetricRange::difference:
      return std::tanh(v);
    case MetricRange::real:
      break;
  }
  return v;
}

// An end within the margin of a bound is the bound: folds all at 1.0 give [1, 1], not [0.999, 0.999].
double at_bound_if_within_margin(double v, MetricRange range) {
  const double low = range == MetricRange::difference ? -1 : 0, rounding = 1e-9;  // logit and back may round
  if (range == MetricRange::real) return v;
  if (v <= low + kRangeMargin + rounding) return low;
  if (range != MetricRange::positive && v >= 1 - kRangeMargin - rounding) return 1;
  return v;
}

double mean_of(const std::vector<double>& values) {
  double sum = 0;
  for (double v : values) sum += v;
  return sum / static_cast<double>(values.size());
}

double sd_of(const std::vector<double>& values, double mean) {
  double squares = 0;
  for (double v : values) squares += (v - mean) * (v - mean);
  return std::sqrt(squares / static_cast<double>(values.size() - 1));
}

}  // namespace

double t_quantile_975(int df) {
  static const double table[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                 2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                                 2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
  if (df < 1) return std::nan("");
  if (df <= 30) return table[df - 1];
  return df <= 60 ? 2.000 : df <= 120 ? 1.980 : 1.960;
}

std::string interval_method(MetricRange range) {
  switch (range) {
    case MetricRange::unit:
      return "t interval on the logit scale";
    case MetricRange::positive:
      return "t interval on the log scale";
    case MetricRange::difference:
      return "t interval on the atanh scale";
    case MetricRange::real:
      break;
  }
  return "t interval";
}

nlohmann::json spread(const std::vector<double>& values, MetricRange range) {
  const auto n = static_cast<int>(values.size());
  nlohmann::json out = {{"mean", nullptr}, {"sd", nullptr}, {"ci", nullptr}, {"n", n},
                        {"ci_method", interval_method(range)}};
  if (n == 0) return out;
  const double mean = mean_of(values);
  out["mean"] = mean;
  if (n < 2) return out;
  out["sd"] = sd_of(values, mean);
  std::vector<double> scaled;
  for (double v : values) scaled.push_back(to_scale(v, range));
  const double centre = mean_of(scaled);
  const double half = t_quantile_975(n - 1) * sd_of(scaled, centre) / std::sqrt(n);
  out["ci"] = {at_bound_if_within_margin(from_scale(centre - half, range), range),
               at_bound_if_within_margin(from_scale(centre + half, range), range)};
  return out;
}

}  // namespace histotrain
