#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "core/checkpoint.h"
#include "model/resnet.h"
#include "test_util.h"
#include "util/errors.h"

namespace histotrain {
namespace {

int64_t parameter_count(ResNet& model) {
  int64_t n = 0;
  for (const auto& p : model->parameters()) n += p.numel();
  return n;
}

TEST(ResNet, ParameterCountsMatchTorchvision) {
  // torchvision.models.resnetXX(num_classes=1000): sum(p.numel() for p in m.parameters())
  ResNet r18("resnet18", 1000), r34("resnet34", 1000), r50("resnet50", 1000);
  EXPECT_EQ(parameter_count(r18), 11689512);
  EXPECT_EQ(parameter_count(r34), 21797672);
  EXPECT_EQ(parameter_count(r50), 25557032);
  // torchvision.models.resnet.ResNet(BasicBlock, [1, 1, 1, 1], num_classes=1000)
  ResNet r10("resnet10", 1000);
  EXPECT_EQ(parameter_count(r10), 5418792);
}

TEST(ResNet, NamesFollowTorchvision) {
  ResNet model("resnet18", 5);
  const auto params = model->named_parameters();
  const auto buffers = model->named_buffers();
  for (const char* name : {"conv1.weight", "bn1.bias", "layer1.0.conv2.weight", "layer2.0.downsample.0.weight",
                           "layer2.0.downsample.1.weight", "layer4.1.bn2.weight", "fc.weight", "fc.bias"})
    EXPECT_NE(params.find(name), nullptr) << name;
  for (const char* name : {"bn1.running_mean", "layer1.0.bn1.running_var", "layer3.0.downsample.1.num_batches_tracked"})
    EXPECT_NE(buffers.find(name), nullptr) << name;
  ResNet r50("resnet50", 5);
  EXPECT_NE(r50->named_parameters().find("layer1.0.conv3.weight"), nullptr);
  EXPECT_NE(r50->named_parameters().find("layer1.0.downsample.0.weight"), nullptr);
}

TEST(ResNet, ForwardShapesAndWeightDecayGroups) {
  for (const auto& arch : supported_archs()) {
    ResNet model(arch, 5);
    model->eval();
    EXPECT_EQ(model->forward(torch::randn({2, 3, 32, 32})).sizes(), (std::vector<int64_t>{2, 5})) << arch;
    const ParameterGroups groups = split_for_weight_decay(*model);
    for (const auto& p : groups.no_decay) EXPECT_EQ(p.dim(), 1);
    EXPECT_EQ(groups.decay.size() + groups.no_decay.size(), model->parameters().size());
  }
  EXPECT_THROW(ResNet("resnet9", 5), UsageError);
}

}  // namespace
}  // namespace histotrain
