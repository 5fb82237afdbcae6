// The metrics from per-image probabilities on cases worked by hand (ties included), temperature
// scaling on logits of a known temperature, and the group bootstrap. Their agreement with
// scikit-learn on a trained model's saved predictions is an end-to-end test (test_parity.cpp).
#include <gtest/gtest.h>

#include <cmath>

#include "core/bootstrap.h"
#include "core/calibration.h"
#include "core/scored_metrics.h"

namespace histotrain {
namespace {

ScoredImages two_class(const std::vector<float>& p_positive, const std::vector<int64_t>& labels,
                       const std::vector<std::string>& groups = {}) {
  std::vector<float> probabilities;
  for (float p : p_positive) probabilities.insert(probabilities.end(), {1 - p, p});
  return scored_images(probabilities, labels, groups, 2);
}

TEST(ScoredMetrics, AucCountsTiesAsHalfAndIsUndefinedWithoutBothSides) {
  // Positives at 0.8, 0.4 and 0.4; negatives at 0.4 and 0.1. Pairs won: 0.8 beats both (2),
  // each 0.4 beats 0.1 and ties 0.4 (1.5 each): 5 of 6.
  const ScoredImages s = two_class({0.8f, 0.4f, 0.4f, 0.4f, 0.1f}, {1, 1, 1, 0, 0});
  EXPECT_NEAR(roc_auc(s, 1, order_by_probability(s, 1)), 5.0 / 6, 1e-12);
  const ScoredImages tied = two_class({0.5f, 0.5f, 0.5f, 0.5f}, {1, 0, 1, 0});
  EXPECT_NEAR(roc_auc(tied, 1, order_by_probability(tied, 1)), 0.5, 1e-12);
  const ScoredImages one_sided = two_class({0.9f, 0.2f}, {1, 1});
  EXPECT_TRUE(std::isnan(roc_auc(one_sided, 1, order_by_probability(one_sided, 1))));
  EXPECT_TRUE(std::isnan(roc_auc(one_sided, 0, order_by_probability(one_sided, 0))));
  // Weights count an image that many times: with the 0.1 negative three times there are 12 pairs,
  // and 0.8 wins 4 of them, each 0.4 positive 3 + one half.
  const ImageWeights weights{1, 1, 1, 1, 3};
  EXPECT_NEAR(roc_auc(s, 1, order_by_probability(s, 1), weights), (4 + 2 * 3.5) / 12.0, 1e-12);
}

TEST(ScoredMetrics, AveragePrecisionStepsThroughDistinctThresholds) {
  // Descending: 0.9 (pos), 0.7 (neg), 0.5 (pos, pos, neg tied), 0.2 (pos).
  // Thresholds: 0.9 -> P 1, R 1/4; 0.7 -> P 1/2, R 1/4; 0.5 -> P 3/5, R 3/4; 0.2 -> P 4/6, R 1.
  const ScoredImages s = two_class({0.9f, 0.7f, 0.5f, 0.5f, 0.5f, 0.2f}, {1, 0, 1, 1, 0, 1});
  const double expected = 0.25 * 1 + 0 * 0.5 + 0.5 * 0.6 + 0.25 * (4.0 / 6);
  EXPECT_NEAR(average_precision(s, 1, order_by_probability(s, 1)), expected, 1e-12);
  EXPECT_TRUE(std::isnan(average_precision(two_class({0.3f}, {0}), 1, {0})));
}

TEST(ScoredMetrics, LogLossClipsAndRenormalisesEachRow) {
  const ScoredImages s = scored_images({0.5f, 0.25f, 0.25f, 0.f, 1.f, 0.f}, {0, 0}, {}, 3);
  const double clipped = std::log(1 + 1e-15) - std::log(1e-15);  // the true class had probability 0
  EXPECT_NEAR(log_loss(s), (-std::log(0.5) + clipped) / 2, 1e-9);
}

TEST(ScoredMetrics, ReliabilityBinsTheTopProbabilityWithInclusiveUpperEdges) {
  // 4 bins; confidences 0.75 (right), 0.75 (wrong) and 1 (right). 0.75 is bin 2's upper edge,
  // (0.5, 0.75], and 1 is bin 3's.
  const ScoredImages s = two_class({0.75f, 0.25f, 1.0f}, {1, 1, 1});
  const Reliability r = reliability(s, 4);
  EXPECT_EQ(r.count, (std::vector<int64_t>{0, 0, 2, 1}));
  EXPECT_DOUBLE_EQ(r.accuracy[2], 0.5);
  EXPECT_DOUBLE_EQ(r.confidence[2], 0.75);
  EXPECT_DOUBLE_EQ(r.ece, 2 * 0.25 / 3);
}

TEST(ScoredMetrics, BalancedAccuracyIsTheMeanRecallOfTheClassesPresent) {
  const ScoredImages s = scored_images({0.9f, 0.1f, 0.f, 0.9f, 0.1f, 0.f, 0.9f, 0.1f, 0.f, 0.2f, 0.8f, 0.f},
                                       {0, 0, 1, 1}, {}, 3);  // class 2 absent
  const ConfusionMatrix m = confusion_of(s);
  EXPECT_NEAR(m.balanced_accuracy(), (1.0 + 0.5) / 2, 1e-12);
  EXPECT_NEAR(m.accuracy(), 0.75, 1e-12);
}

// Labels drawn from softmax(z / 2) for known logits z: the fitted temperature is about 2.
TEST(Calibration, TemperatureScalingRecoversAKnownTemperature) {
  torch::manual_seed(3);
  const int64_t n = 20000, k = 5;
  const torch::Tensor logits = torch::randn({n, 1, k}) * 4;
  for (const double truth : {0.5, 2.0}) {
    const torch::Tensor labels = torch::multinomial(torch::softmax(logits.squeeze(1) / truth, 1), 1).squeeze(1);
    const double fitted = fit_temperature(logits, labels);
    EXPECT_NEAR(fitted, truth, 0.05 * truth) << "true temperature " << truth;
    EXPECT_LT(nll_at(logits, labels, fitted), nll_at(logits, labels, 1.0));
  }
  // One view: softmax(z / T). Several: the mean of the views' softmax at T = 1, and at any T the
  // same predicted class.
  const torch::Tensor view = torch::randn({3, 1, k}), views = torch::randn({50, 8, k}) * 3;
  EXPECT_TRUE(torch::allclose(probabilities_at(view, 2.0), torch::softmax(view.squeeze(1) / 2.0, 1)));
  EXPECT_TRUE(torch::allclose(probabilities_at(views, 1.0), torch::softmax(views, 2).mean(1), 1e-5, 1e-6));
  for (const double t : {0.3, 3.0}) EXPECT_TRUE(torch::equal(probabilities_at(views, t).argmax(1), probabilities_at(views, 1.0).argmax(1)));
}

TEST(Bootstrap, QuantilesInterpolateLikeNumpy) {
  std::vector<double> v{4, 1, 3, 2};
  EXPECT_DOUBLE_EQ(quantile(v, 0.5), 2.5);
  EXPECT_DOUBLE_EQ(quantile(v, 0.025), 1.075);  // numpy.quantile([1, 2, 3, 4], 0.025)
}

// 60 groups of 10 near-identical tiles: each group is all right or all wrong. The images are not
// 600 independent cases but 60, and the interval over groups says so.
TEST(Bootstrap, GroupIntervalsAreReproducibleAndWiderThanPerImageOnesWhenGroupsAreNearCopies) {
  std::vector<float> p;
  std::vector<int64_t> labels;
  std::vector<std::string> groups;
  for (int g = 0; g < 60; ++g)
    for (int i = 0; i < 10; ++i) {
      const bool right = g % 4 != 0;
      const int64_t label = g % 2;
      const float p1 = (label == 1) == right ? 0.8f - 0.01f * static_cast<float>(i) : 0.3f;
      p.insert(p.end(), {1 - p1, p1});
      labels.push_back(label);
      groups.push_back("g" + std::to_string(g));
    }
  const ScoredImages by_group = scored_images(p, labels, groups, 2);
  const ScoredImages by_image = scored_images(p, labels, {}, 2);
  const BootstrapOptions options{500, 11};
  const auto a = bootstrap_intervals(by_group, options), again = bootstrap_intervals(by_group, options);
  EXPECT_EQ(a, again) << "the same seed draws the same resamples";
  EXPECT_NE(a, bootstrap_intervals(by_group, {500, 12}));
  EXPECT_EQ(a["unit"], "source group");
  EXPECT_EQ(a["units"], 60);
  const auto b = bootstrap_intervals(by_image, options);
  EXPECT_EQ(b["unit"], "image");
  EXPECT_TRUE(b.contains("note"));
  const auto width = [](const nlohmann::json& ci, const char* metric) {
    return ci[metric][1].get<double>() - ci[metric][0].get<double>();
  };
  for (const char* metric : {"accuracy", "balanced_accuracy", "macro_f1"}) {
    EXPECT_GT(width(a, metric), 2 * width(b, metric)) << metric;
    EXPECT_LE(a[metric][0].get<double>(), 0.75);
    EXPECT_GE(a[metric][1].get<double>(), 0.75);
  }
  EXPECT_TRUE(bootstrap_intervals(by_group, {0, 1}).is_null());
}

}  // namespace
}  // namespace histotrain
