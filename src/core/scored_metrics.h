// Metrics from per-image class probabilities, the way papers report them: one-vs-rest ROC-AUC,
// average precision, log-loss, calibration. Everything here is computed from the probabilities
// as they are saved (eval --predictions writes them exactly), so any other tool can recompute it.
// Definitions follow scikit-learn's, which the tests check them against.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/metrics.h"

namespace histotrain {

struct ScoredImages {
  int64_t classes = 0;
  std::vector<int64_t> labels;         // per image, index into the classes
  std::vector<double> probabilities;   // per image `classes` values, row-major
  std::vector<int64_t> groups;         // per image its source group, 0..group_count-1
  int64_t group_count = 0;

  int64_t size() const { return static_cast<int64_t>(labels.size()); }
  double p(int64_t image, int64_t k) const { return probabilities[static_cast<size_t>(image * classes + k)]; }
  // The most probable class (the first of equals), and its probability.
  int64_t predicted(int64_t image) const;
  double confidence(int64_t image) const { return p(image, predicted(image)); }
};

// `probabilities` [N, K] (any float type, on the CPU); `groups` per image by name (empty: each
// image is its own group).
ScoredImages scored_images(const std::vector<float>& probabilities, const std::vector<int64_t>& labels,
                           const std::vector<std::string>& groups, int64_t classes);

// Image weights (a bootstrap resample's multiplicities); empty: every image once.
using ImageWeights = std::vector<double>;

ConfusionMatrix confusion_of(const ScoredImages& s, const ImageWeights& weights = {});

// Images in ascending order of class k's probability: the one sort every AUC of k can reuse.
std::vector<int64_t> order_by_probability(const ScoredImages& s, int64_t k);

// One-vs-rest ROC-AUC of class k (ties count one half: the area under the trapezoid curve).
// NaN when class k has no positives or no negatives. `order`: order_by_probability(s, k).
double roc_auc(const ScoredImages& s, int64_t k, const std::vector<int64_t>& order, const ImageWeights& weights = {});
// The mean of the classes' AUCs that are defined; NaN when none is.
double macro_roc_auc(const ScoredImages& s, const std::vector<std::vector<int64_t>>& orders,
                     const ImageWeights& weights = {});

// Class k's ROC curve: (false positive rate, true positive rate) at each distinct threshold, from
// (0, 0) to (1, 1); empty when roc_auc is undefined.
std::vector<std::pair<double, double>> roc_curve(const ScoredImages& s, int64_t k, const std::vector<int64_t>& order);

// Average precision of class k: the sum over thresholds (descending) of the recall gained times
// the precision there, as scikit-learn's average_precision_score. NaN without positives.
double average_precision(const ScoredImages& s, int64_t k, const std::vector<int64_t>& order);

// Mean negative log-probability of the true class, probabilities clipped to [1e-15, 1 - 1e-15]
// and each row then divided by its sum (scikit-learn 1.2's log_loss).
double log_loss(const ScoredImages& s);

// Expected calibration error over `bins` equal-width bins of the top-class probability, bin i
// holding (i/bins, (i+1)/bins]: the image-weighted mean of |accuracy - mean confidence|.
struct Reliability {
  int bins = 15;
  std::vector<int64_t> count;
  std::vector<double> confidence, accuracy;  // per bin, its mean (0 in an empty bin)
  double ece = 0;
  nlohmann::json to_json() const;
};
Reliability reliability(const ScoredImages& s, int bins = 15);

// Point metrics beside the confusion matrix's: balanced accuracy, macro and per-class ROC-AUC and
// average precision (in "per_class"), log-loss, ECE (null where undefined).
nlohmann::json probability_metrics_json(const ScoredImages& s, const std::vector<std::string>& class_names);

}  // namespace histotrain
