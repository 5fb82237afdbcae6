#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "model/resnet.h"
#include "test_util.h"
#include "train/checkpoint.h"
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

// The checkpoint's model.safetensors and its model.pt export load into torchvision's ResNet in
// Python (strict) and give the same logits on the same input, with BN statistics that are not
// the defaults.
TEST(TorchvisionParity, CheckpointLoadsInPythonAndLogitsMatch) {
  if (testing::torchvision_python().empty()) {
    ASSERT_FALSE(testing::packages_required()) << "no python3 with torchvision and numpy: run.sh installs them";
    GTEST_SKIP() << "no python3 with torchvision and numpy (HISTOTRAIN_PYTHON)";
  }
  for (const std::string arch : {"resnet18", "resnet50"}) {
    testing::ScratchDir dir;
    torch::manual_seed(1);
    ResNet model(arch, 5);
    torch::NoGradGuard no_grad;
    for (auto& m : model->modules(false))
      if (auto* bn = m->as<torch::nn::BatchNorm2d>()) {
        bn->running_mean.uniform_(-0.5, 0.5);
        bn->running_var.uniform_(0.5, 2.0);
        bn->weight.uniform_(0.5, 1.5);
        bn->bias.uniform_(-0.2, 0.2);
      }
    model->eval();
    const torch::Tensor x = torch::randn({2, 3, 64, 64});
    const torch::Tensor logits = model->forward(x).contiguous();
    torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.1));
    save_checkpoint(dir.path(), model, optimizer, GradScaler(false), {{"step", 0}});

    std::ofstream(dir / "x.bin", std::ios::binary)
        .write(reinterpret_cast<const char*>(x.data_ptr<float>()), static_cast<std::streamsize>(x.numel() * 4));
    nlohmann::json expected = {{"shape", x.sizes().vec()}, {"logits", nlohmann::json::array()}};
    for (int64_t i = 0; i < logits.size(0); ++i) {
      std::vector<float> row(logits[i].data_ptr<float>(), logits[i].data_ptr<float>() + logits.size(1));
      expected["logits"].push_back(row);
    }
    std::ofstream(dir / "logits.json") << expected.dump();
    for (const char* file : {"model.safetensors", "model.pt"}) {
      const std::string args = (dir / file).string() + " " + arch + " 5 " + (dir / "x.bin").string() + " " +
                               (dir / "logits.json").string();
      EXPECT_EQ(testing::run_torchvision_parity(args), 0) << args;
    }
  }
}

}  // namespace
}  // namespace histotrain
