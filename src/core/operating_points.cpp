#include "core/operating_points.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>

#include "util/errors.h"

namespace histotrain {

namespace {

struct Counts {
  double tp = 0, fp = 0, tn = 0, fn = 0;
  double ratio(double a, double b) const { return a + b > 0 ? a / (a + b) : std::nan(""); }
  double sensitivity() const { return ratio(tp, fn); }
  double specificity() const { return ratio(tn, fp); }
  double ppv() const { return ratio(tp, fp); }
  double npv() const { return ratio(tn, fn); }
};

// Class k against the rest, positive when p(k) >= threshold; `weights` as a bootstrap draws them.
Counts counts_at(const ScoredImages& s, int64_t k, double threshold, const ImageWeights& weights = {}) {
  Counts c;
  for (int64_t i = 0; i < s.size(); ++i) {
    const double w = weights.empty() ? 1.0 : weights[static_cast<size_t>(i)];
    const bool called = s.p(i, k) >= threshold, truly = s.labels[i] == k;
    (truly ? (called ? c.tp : c.fn) : (called ? c.fp : c.tn)) += w;
  }
  return c;
}

// The highest threshold at which at least `target` of class k's images are called k: the
// ceil(target * positives)-th highest probability among them. NaN without positives.
double threshold_for_sensitivity(const ScoredImages& s, int64_t k, double target) {
  std::vector<double> positives;
  for (int64_t i = 0; i < s.size(); ++i)
    if (s.labels[i] == k) positives.push_back(s.p(i, k));
  if (positives.empty()) return std::nan("");
  std::sort(positives.begin(), positives.end(), std::greater<>());
  const auto needed = static_cast<size_t>(std::ceil(target * static_cast<double>(positives.size()) - 1e-9));
  return positives[std::clamp<size_t>(needed, 1, positives.size()) - 1];
}

nlohmann::json number_or_null(double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); }

nlohmann::json intervals_at(const ScoredImages& s, int64_t k, double threshold, const BootstrapOptions& options) {
  if (options.resamples <= 0 || s.size() == 0) return nullptr;
  std::mt19937_64 rng(options.seed);
  std::vector<double> sensitivity, specificity, ppv, npv;
  for (int r = 0; r < options.resamples; ++r) {
    const Counts c = counts_at(s, k, threshold, draw_resample(s, rng));
    sensitivity.push_back(c.sensitivity());
    specificity.push_back(c.specificity());
    ppv.push_back(c.ppv());
    npv.push_back(c.npv());
  }
  return {{"sensitivity", percentile_interval(sensitivity)},
          {"specificity", percentile_interval(specificity)},
          {"ppv", percentile_interval(ppv)},
          {"npv", percentile_interval(npv)}};
}

int64_t class_index(const std::vector<std::string>& classes, const std::string& name) {
  const auto it = std::find(classes.begin(), classes.end(), name);
  if (it == classes.end()) {
    std::string known;
    for (const auto& c : classes) known += (known.empty() ? "" : ", ") + c;
    throw Error("operating point for '" + name + "': not one of the model's classes (" + known + ")");
  }
  return it - classes.begin();
}

}  // namespace

OperatingPointRequest parse_operating_point(const std::string& text, OperatingPointRequest::Kind kind,
                                            const std::string& flag) {
  const size_t eq = text.rfind('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
    throw UsageError(flag + " takes CLASS=VALUE (e.g. lung_aca=0.5), got '" + text + "'");
  OperatingPointRequest request;
  request.class_name = text.substr(0, eq);
  request.kind = kind;
  const std::string number = text.substr(eq + 1);
  size_t used = 0;
  try {
    request.value = std::stod(number, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != number.size() || !(request.value >= 0 && request.value <= 1))
    throw UsageError(flag + " " + text + ": '" + number + "' is not a number from 0 to 1");
  return request;
}

nlohmann::json operating_points_json(const ScoredImages& s, const std::vector<std::string>& classes,
                                     const std::vector<OperatingPointRequest>& requests,
                                     const BootstrapOptions& bootstrap) {
  nlohmann::json points = nlohmann::json::array();
  for (const auto& request : requests) {
    const int64_t k = class_index(classes, request.class_name);
    const bool by_target = request.kind == OperatingPointRequest::Kind::target_sensitivity;
    const double threshold = by_target ? threshold_for_sensitivity(s, k, request.value) : request.value;
    char chosen_by[64];
    std::snprintf(chosen_by, sizeof chosen_by, "target sensitivity %g", request.value);
    nlohmann::json point = {{"class", request.class_name},
                            {"chosen_by", by_target ? chosen_by : "given threshold"},
                            {"threshold", number_or_null(threshold)}};
    if (std::isnan(threshold)) {
      point["note"] = "no image of this class: no threshold reaches a sensitivity";
      points.push_back(point);
      continue;
    }
    const Counts c = counts_at(s, k, threshold);
    point.update({{"tp", c.tp}, {"fp", c.fp}, {"tn", c.tn}, {"fn", c.fn},
                  {"sensitivity", number_or_null(c.sensitivity())}, {"specificity", number_or_null(c.specificity())},
                  {"ppv", number_or_null(c.ppv())}, {"npv", number_or_null(c.npv())},
                  {"confidence_intervals", intervals_at(s, k, threshold, bootstrap)}});
    if (by_target)
      point["note"] = "the threshold was chosen on these images, so their sensitivity is optimistic: choose it on "
                      "validation and give it with --threshold on a test set";
    points.push_back(point);
  }
  return points;
}

}  // namespace histotrain
