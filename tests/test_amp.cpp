#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/amp.h"
#include "core/compat.h"
#include "model/resnet.h"
#include "test_util.h"
#include "train/config.h"
#include "train/optimizer.h"
#include "util/errors.h"

namespace histotrain {
namespace {

// One parameter with a hand-set gradient: enough to watch the scaler decide.
struct OneParameter {
  torch::Tensor weight = torch::ones({4}, torch::requires_grad());
  torch::optim::SGD optimizer{std::vector<torch::Tensor>{weight}, torch::optim::SGDOptions(0.1)};
  void set_grad(std::vector<float> values) { weight.mutable_grad() = torch::tensor(values); }
};

TEST(GradScaler, SkipsTheStepAndHalvesTheScaleOnInfOrNan) {
  for (float bad : {std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()}) {
    OneParameter p;
    GradScaler scaler(true, {/*init_scale=*/1024, 2.0, 0.5, /*growth_interval=*/3});
    p.set_grad({1, bad, 1, 1});
    EXPECT_FALSE(scaler.step(p.optimizer));
    EXPECT_TRUE(torch::equal(p.weight, torch::ones({4}))) << "the step must be skipped";
    EXPECT_EQ(scaler.scale(), 512);
    EXPECT_EQ(scaler.growth_tracker(), 0);
  }
}

TEST(GradScaler, UnscalesBeforeTheStepAndGrowsAfterCleanSteps) {
  OneParameter p;
  GradScaler scaler(true, {1024, 2.0, 0.5, 3});
  for (int i = 0; i < 3; ++i) {
    p.set_grad({1024, 2048, 0, -1024});  // the true gradient times the scale
    EXPECT_TRUE(scaler.step(p.optimizer));
  }
  // Three steps with true gradient (1, 2, 0, -1) and lr 0.1.
  EXPECT_TRUE(torch::allclose(p.weight, torch::tensor({0.7f, 0.4f, 1.0f, 1.3f})));
  EXPECT_EQ(scaler.scale(), 2048) << "grows after growth_interval clean steps";
  EXPECT_EQ(scaler.growth_tracker(), 0);
  EXPECT_NEAR(scaler.scale_loss(torch::tensor(1.5f)).item<float>(), 3072, 1e-3);
}

TEST(GradScaler, RestoresItsStateAndRefusesAnImpossibleOne) {
  GradScaler scaler(true, {1024, 2.0, 0.5, 10});
  scaler.update(true);
  scaler.update(false);
  scaler.update(false);
  GradScaler restored(true, {1024, 2.0, 0.5, 10});
  restored.restore(scaler.scale(), scaler.growth_tracker());
  EXPECT_EQ(restored.scale(), 512);
  EXPECT_EQ(restored.growth_tracker(), 2);
  EXPECT_THROW(restored.restore(std::nan(""), 0), Error);  // from an edited checkpoint
  EXPECT_THROW(restored.restore(-1, 0), Error);
  EXPECT_THROW(restored.restore(8, -3), Error);
  EXPECT_EQ(restored.scale(), 512);
}

TEST(GradScaler, DisabledIsAPassThroughAndTheReducerDecidesForAllRanks) {
  OneParameter p;
  GradScaler off(false);
  p.set_grad({1, 1, 1, 1});
  EXPECT_TRUE(off.step(p.optimizer));
  EXPECT_EQ(off.scale_loss(torch::tensor(2.0f)).item<float>(), 2.0f);

  // Another rank saw an overflow: the reducer reports it, and this rank skips too.
  GradScaler scaler(true, {8, 2.0, 0.5, 100});
  scaler.set_found_inf_reducer([](torch::Tensor& found_inf) { found_inf.fill_(1.0f); });
  const auto before = p.weight.clone();
  p.set_grad({8, 8, 8, 8});
  EXPECT_FALSE(scaler.step(p.optimizer));
  EXPECT_TRUE(torch::equal(p.weight, before));
}

TEST(Autocast, ScopeCastsConvolutionsToBf16AndRestoresOnExit) {
  auto conv = torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 4, 3));
  const auto x = torch::randn({1, 3, 8, 8});
  {
    AutocastScope outer(Precision::bf16, torch::kCPU);
    EXPECT_EQ(conv(x).scalar_type(), torch::kBFloat16);
    {
      AutocastScope inner(Precision::bf16, torch::kCPU);
    }
    EXPECT_TRUE(compat::autocast_enabled(c10::DeviceType::CPU)) << "a nested scope leaves the outer one on";
  }
  EXPECT_FALSE(compat::autocast_enabled(c10::DeviceType::CPU));
  EXPECT_EQ(conv(x).scalar_type(), torch::kFloat32);
  EXPECT_THROW(parse_precision("fp8"), UsageError);
  EXPECT_THROW(check_precision_supported(Precision::fp16, torch::kCPU), UsageError);
}

// The same steps on the same batches in fp32, fp32 channels-last and bf16 channels-last.
std::vector<float> train_losses(Precision precision, bool channels_last, torch::Device device = torch::kCPU) {
  torch::manual_seed(3);
  ResNet model("resnet18", 5);
  model->to(device);
  if (channels_last) to_channels_last(*model);
  OptimConfig config;
  config.lr = 0.02;
  auto optimizer = make_optimizer(model, config);
  GradScaler scaler(precision == Precision::fp16);
  torch::manual_seed(4);
  const auto format = channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
  const auto x = torch::randn({16, 3, 32, 32}).to(device).contiguous(format);
  const auto y = torch::arange(16).remainder(5).to(device);
  std::vector<float> losses;
  for (int step = 0; step < 8; ++step) {
    clear_gradients(*optimizer);
    torch::Tensor logits;
    {
      AutocastScope autocast(precision, device);
      logits = model->forward(x);
    }
    const auto loss = torch::nn::functional::cross_entropy(logits.to(torch::kFloat32), y);
    EXPECT_EQ(loss.scalar_type(), torch::kFloat32);
    scaler.scale_loss(loss).backward();
    scaler.step(*optimizer);
    losses.push_back(loss.item<float>());
  }
  for (const auto& p : model->parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat32) << "master weights stay fp32";
  return losses;
}

TEST(MixedPrecision, Bf16AndChannelsLastTrainLikeFp32) {
  const auto fp32 = train_losses(Precision::fp32, false);
  const auto fp32_cl = train_losses(Precision::fp32, true);
  const auto bf16_cl = train_losses(Precision::bf16, true);
  ASSERT_LT(fp32.back(), fp32.front()) << "the steps must learn something to compare";
  for (size_t i = 0; i < fp32.size(); ++i) {
    EXPECT_NEAR(fp32_cl[i], fp32[i], 1e-3 + 1e-3 * fp32[i]) << "step " << i;
    EXPECT_NEAR(bf16_cl[i], fp32[i], 0.05 + 0.05 * fp32[i]) << "step " << i;
  }
}

TEST(MixedPrecision, Fp16WithLossScalingOnCuda) {
  if (!compat::cuda_available()) GTEST_SKIP() << "no CUDA device";
  const auto fp32 = train_losses(Precision::fp32, true, torch::kCUDA);
  const auto fp16 = train_losses(Precision::fp16, true, torch::kCUDA);
  for (size_t i = 0; i < fp32.size(); ++i) EXPECT_NEAR(fp16[i], fp32[i], 0.05 + 0.05 * fp32[i]) << "step " << i;
}

}  // namespace
}  // namespace histotrain
