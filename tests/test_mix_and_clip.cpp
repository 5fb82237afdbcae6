// Recipe pieces: mixup and CutMix targets, gradient clipping.
#include <gtest/gtest.h>

#include <random>

#include "core/sgd_update.h"
#include "data/batches.h"

namespace histotrain {
namespace {

const torch::Tensor kLabels = torch::tensor({0, 1, 2, 3, 4, 0, 1, 2}, torch::kLong);

TEST(Mix, MixupBlendsTheBatchWithItselfReversedAndTargetsSumToOne) {
  torch::manual_seed(0);
  const torch::Tensor original = torch::rand({8, 3, 16, 16});
  Augmentation a;
  a.mixup_alpha = 0.8;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    std::mt19937_64 rng(seed);
    torch::Tensor images = original.clone();
    const torch::Tensor targets = mix_batch(images, kLabels, 5, a, rng);
    EXPECT_TRUE(torch::allclose(targets.sum(1), torch::ones({8}), 1e-6, 1e-6));
    const double lambda = targets[0][0].item<double>();  // label 0 against the reversed label 2
    EXPECT_NEAR(targets[0][2].item<double>(), 1 - lambda, 1e-6);
    EXPECT_TRUE(torch::allclose(images, original * lambda + original.flip({0}) * (1 - lambda), 1e-5, 1e-6));
  }
}

TEST(Mix, CutMixPastesABoxWhoseAreaIsTheTargetsShareAndSmoothingIsKept) {
  torch::manual_seed(1);
  const torch::Tensor original = torch::rand({8, 3, 32, 32});
  Augmentation a;
  a.cutmix_alpha = 1.0;
  a.target_smoothing = 0.1;
  int mixed = 0;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    std::mt19937_64 rng(seed);
    torch::Tensor images = original.clone();
    const torch::Tensor targets = mix_batch(images, kLabels, 5, a, rng);
    EXPECT_TRUE(torch::allclose(targets.sum(1), torch::ones({8}), 1e-6, 1e-6));
    // Every pixel is its own image's or the reversed image's, and the pasted share is 1 - lambda.
    const torch::Tensor pasted = (images - original).abs().sum(1) > 0;
    const torch::Tensor from_reversed = (images - original.flip({0})).abs().sum(1) == 0;
    EXPECT_TRUE((pasted <= from_reversed).all().item<bool>());
    const double share = pasted[0].to(torch::kFloat64).mean().item<double>();
    const double off = 0.1 / 5, lambda = (targets[0][0].item<double>() - off) / (1 - 0.1);
    EXPECT_NEAR(share, 1 - lambda, 1e-6);
    mixed += share > 0;
  }
  EXPECT_GT(mixed, 10);
  Augmentation never = a;
  never.mix_prob = 0;
  std::mt19937_64 rng(3);
  torch::Tensor images = original.clone();
  const torch::Tensor targets = mix_batch(images, kLabels, 5, never, rng);
  EXPECT_TRUE(images.equal(original));
  EXPECT_NEAR(targets[1][1].item<double>(), 0.9 + 0.02, 1e-6);  // a smoothed one-hot
}

TEST(Clip, TheGlobalNormIsBoundedAndSmallGradientsAreLeftAlone) {
  torch::nn::Linear layer(4, 3);
  torch::optim::SGD sgd(layer->parameters(), torch::optim::SGDOptions(0.1));
  for (auto& p : layer->parameters()) p.mutable_grad() = torch::full_like(p, 2.0);
  const double before = clip_gradient_norm(sgd, 1.0);
  EXPECT_NEAR(before, 2.0 * std::sqrt(12.0 + 3.0), 1e-5);
  double after = 0;
  for (auto& p : layer->parameters()) after += p.grad().square().sum().item<double>();
  EXPECT_LE(std::sqrt(after), 1.0 + 1e-5);
  EXPECT_GT(std::sqrt(after), 0.999);
  const torch::Tensor kept = layer->weight.grad().clone();
  clip_gradient_norm(sgd, 10.0);
  EXPECT_TRUE(layer->weight.grad().equal(kept));
}

}  // namespace
}  // namespace histotrain
