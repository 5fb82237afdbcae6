#include "core/scored_metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <unordered_map>

namespace histotrain {

namespace {

constexpr double kUndefined = std::numeric_limits<double>::quiet_NaN();

double weight_of(const ImageWeights& weights, int64_t image) {
  return weights.empty() ? 1.0 : weights[static_cast<size_t>(image)];
}

// JSON has no NaN: an undefined metric is null.
nlohmann::json number_or_null(double value) { return std::isnan(value) ? nlohmann::json(nullptr) : nlohmann::json(value); }

}  // namespace

int64_t ScoredImages::predicted(int64_t image) const {
  int64_t best = 0;
  for (int64_t k = 1; k < classes; ++k)
    if (p(image, k) > p(image, best)) best = k;
  return best;
}

ScoredImages scored_images(const std::vector<float>& probabilities, const std::vector<int64_t>& labels,
                           const std::vector<std::string>& groups, int64_t classes) {
  if (classes < 1 || probabilities.size() != labels.size() * static_cast<size_t>(classes) ||
      (!groups.empty() && groups.size() != labels.size()))
    throw std::invalid_argument("scored_images: probabilities, labels and groups do not match");
  ScoredImages s;
  s.classes = classes;
  s.labels = labels;
  s.probabilities.assign(probabilities.begin(), probabilities.end());
  std::unordered_map<std::string, int64_t> ids;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (groups.empty()) {
      s.groups.push_back(static_cast<int64_t>(i));
      continue;
    }
    const auto [at, added] = ids.emplace(groups[i], static_cast<int64_t>(ids.size()));
    s.groups.push_back(at->second);
  }
  s.group_count = groups.empty() ? static_cast<int64_t>(labels.size()) : static_cast<int64_t>(ids.size());
  return s;
}

ConfusionMatrix confusion_of(const ScoredImages& s, const ImageWeights& weights) {
  ConfusionMatrix m(s.classes);
  for (int64_t i = 0; i < s.size(); ++i) {
    const auto n = static_cast<int64_t>(weight_of(weights, i));
    if (n > 0) m.add(s.labels[i], s.predicted(i), n);
  }
  return m;
}

std::vector<int64_t> order_by_probability(const ScoredImages& s, int64_t k) {
  std::vector<int64_t> order(static_cast<size_t>(s.size()));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return s.p(a, k) < s.p(b, k); });
  return order;
}

// The Mann-Whitney count: for each positive, the negatives below it plus half those tied with it.
double roc_auc(const ScoredImages& s, int64_t k, const std::vector<int64_t>& order, const ImageWeights& weights) {
  double negatives_below = 0, pairs_won = 0, positives = 0;
  for (size_t first = 0; first < order.size();) {
    const double value = s.p(order[first], k);
    double tied_positives = 0, tied_negatives = 0;
    size_t last = first;
    for (; last < order.size() && s.p(order[last], k) == value; ++last) {
      const double w = weight_of(weights, order[last]);
      (s.labels[order[last]] == k ? tied_positives : tied_negatives) += w;
    }
    pairs_won += tied_positives * (negatives_below + 0.5 * tied_negatives);
    negatives_below += tied_negatives;
    positives += tied_positives;
    first = last;
  }
  if (positives == 0 || negatives_below == 0) return kUndefined;
  return pairs_won / (positives * negatives_below);
}

double macro_roc_auc(const ScoredImages& s, const std::vector<std::vector<int64_t>>& orders,
                     const ImageWeights& weights) {
  double sum = 0;
  int defined = 0;
  for (int64_t k = 0; k < s.classes; ++k) {
    const double auc = roc_auc(s, k, orders[k], weights);
    if (std::isnan(auc)) continue;
    sum += auc;
    ++defined;
  }
  return defined ? sum / defined : kUndefined;
}

std::vector<std::pair<double, double>> roc_curve(const ScoredImages& s, int64_t k, const std::vector<int64_t>& order) {
  double positives = 0;
  for (int64_t i = 0; i < s.size(); ++i) positives += s.labels[i] == k;
  const double negatives = static_cast<double>(s.size()) - positives;
  if (positives == 0 || negatives == 0) return {};
  std::vector<std::pair<double, double>> curve{{0.0, 0.0}};
  double true_positives = 0, false_positives = 0;
  for (size_t last = order.size(); last > 0;) {  // thresholds from the highest probability down
    const double value = s.p(order[last - 1], k);
    for (; last > 0 && s.p(order[last - 1], k) == value; --last)
      (s.labels[order[last - 1]] == k ? true_positives : false_positives) += 1;
    curve.emplace_back(false_positives / negatives, true_positives / positives);
  }
  return curve;
}

double average_precision(const ScoredImages& s, int64_t k, const std::vector<int64_t>& order) {
  double positives = 0;
  for (int64_t i = 0; i < s.size(); ++i) positives += s.labels[i] == k;
  if (positives == 0) return kUndefined;
  double true_positives = 0, seen = 0, recall_before = 0, sum = 0;
  for (size_t last = order.size(); last > 0;) {  // thresholds from the highest probability down
    const double value = s.p(order[last - 1], k);
    for (; last > 0 && s.p(order[last - 1], k) == value; --last) {
      true_positives += s.labels[order[last - 1]] == k;
      ++seen;
    }
    const double recall = true_positives / positives;
    sum += (recall - recall_before) * (true_positives / seen);
    recall_before = recall;
  }
  return sum;
}

double log_loss(const ScoredImages& s) {
  constexpr double eps = 1e-15;
  double sum = 0;
  for (int64_t i = 0; i < s.size(); ++i) {
    double row = 0;
    for (int64_t k = 0; k < s.classes; ++k) row += std::clamp(s.p(i, k), eps, 1 - eps);
    sum -= std::log(std::clamp(s.p(i, s.labels[i]), eps, 1 - eps) / row);
  }
  return s.size() ? sum / static_cast<double>(s.size()) : kUndefined;
}

nlohmann::json Reliability::to_json() const {
  return {{"bins", bins}, {"bin_upper_edges_are", "inclusive"}, {"count", count}, {"confidence", confidence},
          {"accuracy", accuracy}, {"ece", ece}};
}

Reliability reliability(const ScoredImages& s, int bins) {
  Reliability r;
  r.bins = bins;
  r.count.assign(static_cast<size_t>(bins), 0);
  std::vector<double> confidence_sum(static_cast<size_t>(bins), 0), correct(static_cast<size_t>(bins), 0);
  for (int64_t i = 0; i < s.size(); ++i) {
    const int64_t predicted = s.predicted(i);
    const double confidence = s.p(i, predicted);
    const int bin = std::clamp(static_cast<int>(std::ceil(confidence * bins)) - 1, 0, bins - 1);
    ++r.count[bin];
    confidence_sum[bin] += confidence;
    correct[bin] += predicted == s.labels[i];
  }
  r.confidence.assign(static_cast<size_t>(bins), 0);
  r.accuracy.assign(static_cast<size_t>(bins), 0);
  for (int b = 0; b < bins; ++b) {
    if (r.count[b] == 0) continue;
    r.confidence[b] = confidence_sum[b] / static_cast<double>(r.count[b]);
    r.accuracy[b] = correct[b] / static_cast<double>(r.count[b]);
    r.ece += std::abs(r.accuracy[b] - r.confidence[b]) * static_cast<double>(r.count[b]);
  }
  if (s.size()) r.ece /= static_cast<double>(s.size());
  return r;
}

nlohmann::json probability_metrics_json(const ScoredImages& s, const std::vector<std::string>& class_names) {
  nlohmann::json report = confusion_of(s).to_json(class_names);
  std::vector<std::vector<int64_t>> orders;
  for (int64_t k = 0; k < s.classes; ++k) {
    orders.push_back(order_by_probability(s, k));
    auto& per_class = report["per_class"][class_names[k]];
    per_class["auc"] = number_or_null(roc_auc(s, k, orders.back()));
    per_class["average_precision"] = number_or_null(average_precision(s, k, orders.back()));
  }
  report["macro_auc"] = number_or_null(macro_roc_auc(s, orders));
  report["log_loss"] = number_or_null(log_loss(s));
  const Reliability r = reliability(s);
  report["ece"] = r.ece;
  report["reliability"] = r.to_json();
  return report;
}

}  // namespace histotrain
