// histotrain's checkpoints in Python: torchvision's ResNet loads them strictly and computes the
// same logits.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "core/checkpoint.h"
#include "model/resnet.h"
#include "test_util.h"

namespace histotrain {
namespace {

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
