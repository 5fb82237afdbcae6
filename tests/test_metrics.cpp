#include <gtest/gtest.h>

#include "core/loss.h"
#include "core/metrics.h"
#include "core/schedule.h"
#include "train/resolution_schedule.h"
#include "train/time_budget.h"
#include "util/errors.h"

namespace histotrain {
namespace {

TEST(ConfusionMatrix, AccuracyPrecisionRecallF1FromCounts) {
  ConfusionMatrix m(3);
  m.add(0, 0, 8);
  m.add(0, 1, 2);
  m.add(1, 1, 5);
  m.add(2, 0, 5);
  EXPECT_EQ(m.total(), 20);
  EXPECT_DOUBLE_EQ(m.accuracy(), 13.0 / 20);
  EXPECT_DOUBLE_EQ(m.precision(0), 8.0 / 13);
  EXPECT_DOUBLE_EQ(m.recall(0), 0.8);
  EXPECT_DOUBLE_EQ(m.precision(1), 5.0 / 7);
  EXPECT_DOUBLE_EQ(m.recall(1), 1.0);
  EXPECT_DOUBLE_EQ(m.f1(2), 0.0);
  const double f0 = 2 * (8.0 / 13) * 0.8 / (8.0 / 13 + 0.8), f1 = 2 * (5.0 / 7) / (5.0 / 7 + 1);
  EXPECT_NEAR(m.macro_f1(), (f0 + f1 + 0) / 3, 1e-12);
}

TEST(ConfusionMatrix, AbsentClassesDoNotDragMacroF1Down) {
  ConfusionMatrix m(4);
  m.add(1, 1, 10);
  m.add(2, 2, 10);
  EXPECT_DOUBLE_EQ(m.macro_f1(), 1.0);
}

TEST(ConfusionMatrix, MergeSumsCountsBeforeRatios) {
  ConfusionMatrix a(2), b(2);
  a.add(0, 0, 1);
  b.add(1, 0, 3);
  a.merge(b);
  EXPECT_DOUBLE_EQ(a.accuracy(), 0.25);
  const auto j = a.to_json({"x", "y"});
  EXPECT_EQ(j["confusion_matrix"][1][0], 3);
  EXPECT_EQ(j["per_class"]["x"]["support"], 1);
  EXPECT_THROW(a.merge(ConfusionMatrix(3)), std::invalid_argument);
}

// --balance loss: the batch's loss is the class-weighted mean of the per-image cross-entropies.
TEST(ClassificationLoss, ClassWeightsGiveTheWeightedMean) {
  torch::manual_seed(2);
  const torch::Tensor logits = torch::randn({6, 3});
  const torch::Tensor labels = torch::tensor({0, 1, 1, 2, 0, 1}, torch::kLong);
  const std::vector<double> w{0.5, 2.0, 1.0};
  LossOptions options;
  options.class_weights = torch::tensor(w, torch::kFloat32);
  const torch::Tensor per_image = -torch::log_softmax(logits, 1).gather(1, labels.view({-1, 1})).squeeze(1);
  double weighted = 0, total = 0;
  for (int64_t i = 0; i < 6; ++i) {
    weighted += w[labels[i].item<int64_t>()] * per_image[i].item<double>();
    total += w[labels[i].item<int64_t>()];
  }
  EXPECT_NEAR(classification_loss(logits, labels, options).loss.item<double>(), weighted / total, 1e-6);
  EXPECT_NEAR(classification_loss(logits, labels, LossOptions{}).loss.item<double>(), per_image.mean().item<double>(), 1e-6);
}

TEST(LrSchedule, WarmsUpThenDecaysToZero) {
  const LrSchedule onecycle(ScheduleShape::onecycle, 1.0, 10, 110);
  EXPECT_NEAR(onecycle.at(0), 0.1, 1e-12);
  EXPECT_NEAR(onecycle.at(10), 1.0, 1e-12);
  EXPECT_NEAR(onecycle.at(60), 0.5, 1e-12);
  EXPECT_NEAR(onecycle.at(110), 0.0, 1e-12);
  const LrSchedule cosine(ScheduleShape::cosine, 2.0, 0, 100);
  EXPECT_NEAR(cosine.at(0), 2.0, 1e-12);
  EXPECT_NEAR(cosine.at(50), 1.0, 1e-12);
  EXPECT_EQ(from_spelling<ScheduleShape>("cosine"), ScheduleShape::cosine);
  EXPECT_FALSE(from_spelling<ScheduleShape>("step")) << "an unknown shape is no shape";
}

// --time-budget: the warm-up by steps, cut at a quarter of the budget; the decay by time, from
// the warm-up's end to zero at the budget's end.
TEST(TimeBudget, WarmsUpByStepsThenDecaysToZeroAtTheBudget) {
  const LrSchedule schedule(ScheduleShape::onecycle, 1.0, 10, int64_t{1} << 40);
  const TimeBudget budget{100, 10};
  double warmup_end = -1;
  EXPECT_NEAR(budget.lr(schedule, 0, 0, warmup_end), 0.1, 1e-12);
  EXPECT_NEAR(budget.lr(schedule, 5, 5, warmup_end), 0.55, 1e-12);
  EXPECT_LT(warmup_end, 0) << "still warming up";
  EXPECT_NEAR(budget.lr(schedule, 10, 20, warmup_end), 1.0, 1e-12);
  EXPECT_EQ(warmup_end, 20) << "the warm-up ended at step 10, 20 s in";
  EXPECT_NEAR(budget.lr(schedule, 50, 60, warmup_end), 0.5, 1e-12);
  EXPECT_NEAR(budget.lr(schedule, 90, 100, warmup_end), 0.0, 1e-12);
  EXPECT_FALSE(budget.spent(99.9));
  EXPECT_TRUE(budget.spent(100));
  // Slow steps: a warm-up that would outlast a quarter of the budget ends there.
  double cut = -1;
  EXPECT_NEAR(budget.lr(schedule, 3, 25, cut), 1.0, 1e-12);
  EXPECT_EQ(cut, 25);
  EXPECT_FALSE(TimeBudget{}.on());
  EXPECT_FALSE(TimeBudget{}.spent(1e9)) << "no budget is never spent";
}

TEST(ResolutionSchedule, GrowsIn16PixelStepsAndEndsAtTheFullSizeAtItsShare) {
  const ResolutionSchedule grow{32, 64, 0.5};
  EXPECT_EQ(grow.side_at(0), 32);
  EXPECT_EQ(grow.side_at(0.2), 32);    // 32 + 12.8: not yet a whole 16 px step
  EXPECT_EQ(grow.side_at(0.25), 48);
  EXPECT_EQ(grow.side_at(0.49), 48);
  EXPECT_EQ(grow.side_at(0.5), 64);
  EXPECT_EQ(grow.side_at(1.5), 64);    // a step begun past the budget
  const ResolutionSchedule odd{24, 64, 1.0};  // sizes that are not multiples of the step
  EXPECT_EQ(odd.side_at(0.5), 40);
  EXPECT_EQ(odd.side_at(0.99), 56);
  EXPECT_EQ(odd.side_at(1.0), 64);
  for (double share = 0; share <= 1; share += 0.01)
    EXPECT_LE(odd.side_at(share), odd.side_at(share + 0.01)) << "never shrinks";
  EXPECT_FALSE((ResolutionSchedule{0, 64, 0.75}.on()));
  EXPECT_EQ((ResolutionSchedule{0, 64, 0.75}.side_at(0)), 64);
}

TEST(ResolutionSchedule, ASmallerSideIsTheAverageOfEachBlock) {
  const auto images = torch::arange(2 * 3 * 4 * 4, torch::kFloat).view({2, 3, 4, 4});
  const auto half = resized_batch(images, 2, torch::MemoryFormat::Contiguous);
  ASSERT_EQ(half.sizes(), (std::vector<int64_t>{2, 3, 2, 2}));
  const auto block = images.index({1, 2}).slice(0, 2, 4).slice(1, 0, 2);  // rows 2-3, columns 0-1
  EXPECT_FLOAT_EQ(half[1][2][1][0].item<float>(), block.mean().item<float>());
  EXPECT_TRUE(resized_batch(images, 4, torch::MemoryFormat::Contiguous).is_same(images)) << "full size: untouched";
  EXPECT_TRUE(resized_batch(images, 2, torch::MemoryFormat::ChannelsLast).is_contiguous(torch::MemoryFormat::ChannelsLast));
}

}  // namespace
}  // namespace histotrain
