// Intervals over cross-validation folds stay inside each metric's range, whatever the folds.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/fold_statistics.h"

namespace histotrain {
namespace {

// Fold sets as cv meets them: 2 to 10 folds, values anywhere in the range, often at a bound,
// sometimes one fold far from the others.
std::vector<double> random_folds(std::mt19937_64& rng, double low, double high) {
  std::uniform_int_distribution<int> count(2, 10), kind(0, 3);
  std::uniform_real_distribution<double> any(low, high);
  std::vector<double> values(static_cast<size_t>(count(rng)));
  const double centre = any(rng);
  for (auto& v : values) {
    switch (kind(rng)) {
      case 0: v = high; break;
      case 1: v = low; break;
      case 2: v = any(rng); break;
      default: v = std::clamp(centre + 0.01 * any(rng), low, high);
    }
  }
  return values;
}

TEST(FoldStatistics, UnitMetricIntervalsStayInZeroToOneOverManyFoldSets) {
  std::mt19937_64 rng(1);
  for (int set = 0; set < 20000; ++set) {
    const auto values = random_folds(rng, 0, 1);
    const auto s = spread(values, MetricRange::unit);
    ASSERT_TRUE(s["ci"].is_array());
    const double low = s["ci"][0], high = s["ci"][1];
    ASSERT_GE(low, 0.0);
    ASSERT_LE(high, 1.0);
    ASSERT_LE(low, high);
  }
}

TEST(FoldStatistics, DifferenceIntervalsStayInMinusOneToOne) {
  std::mt19937_64 rng(2);
  for (int set = 0; set < 20000; ++set) {
    const auto s = spread(random_folds(rng, -1, 1), MetricRange::difference);
    const double low = s["ci"][0], high = s["ci"][1];
    ASSERT_GE(low, -1.0);
    ASSERT_LE(high, 1.0);
    ASSERT_LE(low, high);
  }
}

TEST(FoldStatistics, PositiveMetricIntervalsStayAboveZero) {
  std::mt19937_64 rng(3);
  for (int set = 0; set < 20000; ++set) {
    const auto s = spread(random_folds(rng, 0, 5), MetricRange::positive);
    ASSERT_GE(s["ci"][0].get<double>(), 0.0);
  }
}

// The cases the plain t interval got wrong: accuracy 0.19-1.02 and an ECE below 0.
TEST(FoldStatistics, TheReportedCasesNowStayInsideAndStillCoverTheMean) {
  const std::vector<double> accuracy{0.35, 0.95, 1.0, 0.9, 0.8};
  const auto plain = spread(accuracy), logit = spread(accuracy, MetricRange::unit);
  EXPECT_GT(plain["ci"][1].get<double>(), 1.0) << "the plain t interval leaves [0, 1] here";
  EXPECT_LE(logit["ci"][1].get<double>(), 1.0);
  EXPECT_LE(logit["ci"][0].get<double>(), logit["mean"].get<double>());
  EXPECT_GE(logit["ci"][1].get<double>(), logit["mean"].get<double>());
  const auto ece = spread({0.01, 0.02, 0.35}, MetricRange::unit);
  EXPECT_GE(ece["ci"][0].get<double>(), 0.0);
  const auto all_perfect = spread({1.0, 1.0, 1.0}, MetricRange::unit);
  EXPECT_EQ(all_perfect["ci"][0].get<double>(), 1.0);
  EXPECT_EQ(all_perfect["ci"][1].get<double>(), 1.0);
  EXPECT_EQ(all_perfect["ci_method"], "t interval on the logit scale");
}

// Where the folds agree closely and sit far from a bound, the transformed interval is close to
// the plain one: the transform changes the shape, not the width, of a well-behaved interval.
TEST(FoldStatistics, FarFromTheBoundsTheLogitIntervalIsCloseToThePlainOne) {
  const std::vector<double> values{0.48, 0.50, 0.52, 0.49, 0.51};
  const auto plain = spread(values), logit = spread(values, MetricRange::unit);
  EXPECT_NEAR(plain["ci"][0].get<double>(), logit["ci"][0].get<double>(), 1e-3);
  EXPECT_NEAR(plain["ci"][1].get<double>(), logit["ci"][1].get<double>(), 1e-3);
}

}  // namespace
}  // namespace histotrain
