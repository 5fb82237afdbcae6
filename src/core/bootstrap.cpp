#include "core/bootstrap.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace histotrain {

namespace {

struct MetricSamples {
  std::vector<double> accuracy, balanced_accuracy, macro_f1, macro_auc;
  std::vector<std::vector<double>> class_auc;  // per class, per resample
};

}  // namespace

ImageWeights draw_resample(const ScoredImages& s, std::mt19937_64& rng) {
  std::vector<double> drawn(static_cast<size_t>(s.group_count), 0);
  std::uniform_int_distribution<int64_t> group(0, s.group_count - 1);
  for (int64_t g = 0; g < s.group_count; ++g) ++drawn[static_cast<size_t>(group(rng))];
  ImageWeights weights(static_cast<size_t>(s.size()));
  for (int64_t i = 0; i < s.size(); ++i) weights[i] = drawn[static_cast<size_t>(s.groups[i])];
  return weights;
}

nlohmann::json percentile_interval(std::vector<double>& samples) {
  std::vector<double> defined;
  for (double v : samples)
    if (!std::isnan(v)) defined.push_back(v);
  if (defined.empty()) return nullptr;
  return {quantile(defined, 0.025), quantile(defined, 0.975)};
}


double quantile(std::vector<double>& values, double q) {
  std::sort(values.begin(), values.end());
  const double at = q * static_cast<double>(values.size() - 1);
  const auto below = static_cast<size_t>(std::floor(at));
  const size_t above = std::min(below + 1, values.size() - 1);
  return values[below] + (at - static_cast<double>(below)) * (values[above] - values[below]);
}

nlohmann::json bootstrap_intervals(const ScoredImages& s, const BootstrapOptions& options) {
  if (options.resamples <= 0 || s.size() == 0) return nullptr;
  std::vector<std::vector<int64_t>> orders;
  for (int64_t k = 0; k < s.classes; ++k) orders.push_back(order_by_probability(s, k));
  std::mt19937_64 rng(options.seed);
  MetricSamples samples;
  samples.class_auc.resize(static_cast<size_t>(s.classes));
  for (int r = 0; r < options.resamples; ++r) {
    const ImageWeights weights = draw_resample(s, rng);
    const ConfusionMatrix confusion = confusion_of(s, weights);
    samples.accuracy.push_back(confusion.accuracy());
    samples.balanced_accuracy.push_back(confusion.balanced_accuracy());
    samples.macro_f1.push_back(confusion.macro_f1());
    double auc_sum = 0;
    int defined = 0;
    for (int64_t k = 0; k < s.classes; ++k) {
      const double auc = roc_auc(s, k, orders[k], weights);
      samples.class_auc[k].push_back(auc);
      if (!std::isnan(auc)) auc_sum += auc, ++defined;
    }
    samples.macro_auc.push_back(defined ? auc_sum / defined : std::nan(""));
  }
  nlohmann::json class_auc = nlohmann::json::array();
  for (auto& per_class : samples.class_auc) class_auc.push_back(percentile_interval(per_class));
  const bool per_group = s.group_count < s.size();
  nlohmann::json report = {{"level", 0.95},
                           {"resamples", options.resamples},
                           {"seed", options.seed},
                           {"unit", per_group ? "source group" : "image"},
                           {"units", s.group_count},
                           {"accuracy", percentile_interval(samples.accuracy)},
                           {"balanced_accuracy", percentile_interval(samples.balanced_accuracy)},
                           {"macro_f1", percentile_interval(samples.macro_f1)},
                           {"macro_auc", percentile_interval(samples.macro_auc)},
                           {"class_auc", class_auc}};
  if (!per_group)
    report["note"] = "no source groups are known (each image is its own): the interval is per image and too narrow "
                     "where tiles of one source image are near-copies";
  return report;
}

}  // namespace histotrain
