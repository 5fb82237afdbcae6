// Fine-tuning from pretrained weights (train --freeze-backbone, --backbone-lr-scale) at the level
// of one optimizer step: which weights move, and by how much. The whole runs: test_init_cli.cpp.
#include <gtest/gtest.h>

#include "model/resnet.h"
#include "model/safetensors.h"
#include "train/optimizer.h"

namespace histotrain {
namespace {

bool in_head(const std::string& name) { return name.rfind("fc.", 0) == 0; }

// Every parameter and buffer, copied.
std::map<std::string, torch::Tensor> snapshot(ResNet& model) {
  std::map<std::string, torch::Tensor> out;
  for (auto& [name, tensor] : module_tensors(*model)) out[name] = tensor.detach().clone();
  return out;
}

// One training step of `model` on a fixed batch at learning rate 0.1.
void one_step(ResNet& model, ScaledSgd& optimizer) {
  torch::manual_seed(11);
  const auto x = torch::randn({4, 3, 32, 32});
  const auto y = torch::tensor({0, 1, 2, 1});
  model->train();
  set_learning_rate(optimizer, 0.1);
  clear_gradients(optimizer);
  torch::nn::functional::cross_entropy(model->forward(x), y).backward();
  multi_tensor_sgd_step(optimizer);
}

ResNet seeded_model() {
  torch::manual_seed(5);
  return ResNet("resnet10", 3);
}

TEST(FineTuning, AFrozenBackboneLeavesEveryTensorButTheHeadAsItWas) {
  ResNet model = seeded_model();
  model->freeze_backbone();
  model->train();
  EXPECT_FALSE(model->bn1->is_training()) << "the backbone's BatchNorm keeps its statistics";
  EXPECT_FALSE(model->layer1->ptr<ResidualBlockImpl>(0)->bn2->is_training());
  EXPECT_TRUE(model->fc->is_training());
  auto optimizer = make_optimizer(model, OptimConfig{});
  size_t learning = 0;
  for (const auto& group : optimizer->param_groups()) learning += group.params().size();
  EXPECT_EQ(learning, 2u) << "fc.weight and fc.bias";
  const auto before = snapshot(model);
  one_step(model, *optimizer);
  for (auto& [name, tensor] : module_tensors(*model)) {
    if (in_head(name))
      EXPECT_FALSE(torch::equal(tensor, before.at(name))) << name;
    else
      EXPECT_TRUE(torch::equal(tensor, before.at(name))) << name;
  }
  EXPECT_FALSE(model->conv1->weight.grad().defined()) << "backward never entered the backbone";
}

TEST(FineTuning, ABackboneLrScaleScalesTheBackbonesStepAndNotTheHeads) {
  ResNet full = seeded_model(), scaled = seeded_model();
  const auto start = snapshot(full);
  auto full_optimizer = make_optimizer(full, OptimConfig{});
  auto scaled_optimizer = make_optimizer(scaled, OptimConfig{}, 0.25);
  EXPECT_EQ(full_optimizer->param_groups().size(), 2u);
  ASSERT_EQ(scaled_optimizer->param_groups().size(), 4u);
  EXPECT_EQ(scaled_optimizer->lr_shares, (std::vector<double>{1, 1, 0.25, 0.25}));
  one_step(full, *full_optimizer);
  one_step(scaled, *scaled_optimizer);
  const auto full_after = snapshot(full);
  int moved = 0;
  for (auto& [name, tensor] : module_tensors(*scaled)) {
    if (!tensor.is_floating_point() || name.find("running_") != std::string::npos) continue;  // not parameters
    const auto full_step = full_after.at(name) - start.at(name), scaled_step = tensor - start.at(name);
    const double share = in_head(name) ? 1.0 : 0.25;
    // The first step from zero momentum is linear in the rate; the gradients are the same.
    EXPECT_TRUE(torch::allclose(scaled_step, full_step * share, 1e-4, 1e-7)) << name;
    moved += full_step.abs().max().item<float>() > 0;
  }
  EXPECT_GT(moved, 10);
}

}  // namespace
}  // namespace histotrain
