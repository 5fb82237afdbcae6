// Starting from someone else's weights, end to end: train --init with a frozen backbone on two
// data-parallel ranks, a run that resumes without its --init file and evaluates, and the
// input normalisation (--normalize dataset) that eval must repeat.
#include <gtest/gtest.h>

#include <fstream>

#include "model/resnet.h"
#include "model/safetensors.h"
#include "test_util.h"
#include "util/files.h"

namespace histotrain {
namespace {

using testing::read_json;
using testing::run_histotrain;
using testing::ScratchDir;
namespace fs = std::filesystem;

// "Pretrained" weights: a ResNet-18 of 1,000 classes with BatchNorm statistics that are not the
// defaults, as a .safetensors file.
fs::path pretrained_weights(const fs::path& dir) {
  torch::manual_seed(21);
  ResNet model("resnet18", 1000);
  torch::NoGradGuard no_grad;
  for (auto& m : model->modules(false))
    if (auto* bn = m->as<torch::nn::BatchNorm2d>()) {
      bn->running_mean.uniform_(-0.2, 0.2);
      bn->running_var.uniform_(0.5, 2.0);
    }
  const fs::path file = dir / "pretrained.safetensors";
  std::ofstream(file, std::ios::binary) << safetensors_bytes(module_tensors(*model));
  return file;
}

std::map<std::string, torch::Tensor> tensors_of(const fs::path& file) {
  return read_safetensors(file).tensors;
}

TEST(InitCli, AFrozenBackboneOnTwoRanksTrainsOnlyTheHead) {
  ScratchDir dir;
  const fs::path init = pretrained_weights(dir.path()), run = dir / "run";
  const auto launched = run_histotrain("launch -n 2 --threads-per-rank 1 -- train --data " + testing::synth_data() +
                                       " --image-size 32 --batch-size 8 --epochs 1 --max-steps 4 --quiet --init " +
                                       init.string() + " --freeze-backbone --out " + run.string());
  ASSERT_EQ(launched.exit_code, 0) << launched.err;
  EXPECT_NE(launched.err.find("the file's head has 1000 outputs"), std::string::npos) << launched.err;
  EXPECT_NE(launched.err.find("--freeze-backbone: only the classifier head"), std::string::npos) << launched.err;
  const auto before = tensors_of(init), after = tensors_of(run / "model.safetensors");
  int backbone = 0;
  for (const auto& [name, tensor] : after) {
    if (name.rfind("fc.", 0) == 0) continue;
    EXPECT_TRUE(torch::equal(tensor, before.at(name))) << name << " moved";
    ++backbone;
  }
  EXPECT_EQ(backbone, static_cast<int>(before.size()) - 2);
  const auto summary = read_json(run / "summary.json");
  EXPECT_EQ(summary["init"]["file_classes"], 1000);
  EXPECT_EQ(summary["steps"], 4);
}

// A run started with --init (and --normalize dataset, --backbone-lr-scale) stops, resumes with its
// --init file gone (its own checkpoint holds the weights), and eval on its validation images
// gives the accuracy and log-loss its last validation measured: eval normalises as training did.
TEST(InitCli, ARunFromInitResumesWithoutTheFileAndEvalNormalisesAsTrainingDid) {
  ScratchDir dir;
  const fs::path data = dir / "data";
  fs::copy(testing::synth_data(), data, fs::copy_options::recursive);
  const fs::path init = pretrained_weights(dir.path()), run = dir / "run";
  const std::string args = "train --data " + data.string() + " --groups " + (data / "groups.csv").string() +
                           " --image-size 32 --batch-size 16 --epochs 2 --quiet --cache-dir " +
                           (dir / "cache").string() + " --normalize dataset --backbone-lr-scale 0.1 --init " +
                           init.string() + " --out " + run.string();
  const auto first = run_histotrain(args + " --max-steps 12");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_NE(first.err.find("--normalize dataset: channel mean"), std::string::npos) << first.err;
  fs::remove(init);
  const auto resumed = run_histotrain("train --resume " + run.string() + " --max-steps 0 --quiet");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  const auto meta = read_json(run / "checkpoint.json");
  EXPECT_EQ(meta["step"], 20);
  const auto mean = meta["normalization"]["mean"].get<std::vector<double>>();
  EXPECT_GT(std::abs(mean[0] - 0.485), 0.01) << "the synthetic tiles' own mean, not ImageNet's";
  EXPECT_EQ(meta["init"]["format"], "safetensors");

  // The validation images as a manifest of the test split.
  std::ofstream manifest(data / "val.csv");
  manifest << "path,label,split\n";
  int rows = 0;
  for (const std::string& line : read_list_file(run / "val_images.txt")) {
    manifest << fs::relative(line, data).string() << "," << fs::path(line).parent_path().filename().string()
             << ",test\n";
    ++rows;
  }
  manifest.close();
  const auto evaluated = run_histotrain("eval --checkpoint " + run.string() + " --manifest " +
                                        (data / "val.csv").string() + " --calibration none --bootstrap 0 --json " +
                                        "--quiet --cache-dir " + (dir / "cache").string());
  ASSERT_EQ(evaluated.exit_code, 0) << evaluated.err;
  const auto report = nlohmann::json::parse(evaluated.out);
  EXPECT_EQ(report["images"], rows);
  EXPECT_DOUBLE_EQ(report["accuracy"].get<double>(), meta["metrics"]["accuracy"].get<double>());
  EXPECT_NEAR(report["log_loss"].get<double>(), meta["metrics"]["log_loss"].get<double>(), 1e-5);
}

TEST(InitCli, FlagsThatCannotWorkTogetherAreRefusedBeforeAnyWork) {
  const std::string data = testing::synth_data();
  const auto no_init = run_histotrain("train --data " + data + " --freeze-backbone --out /nonexistent/run");
  EXPECT_EQ(no_init.exit_code, 2);
  EXPECT_NE(no_init.err.find("give --init"), std::string::npos) << no_init.err;
  const auto both = run_histotrain("train --data " + data + " --init x.pth --freeze-backbone --backbone-lr-scale 0.1");
  EXPECT_EQ(both.exit_code, 2);
  ScratchDir dir;
  const auto missing = run_histotrain("train --data " + data + " --init " + (dir / "none.pth").string() +
                                      " --quiet --out " + (dir / "run").string());
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("does not exist"), std::string::npos) << missing.err;
  EXPECT_EQ(missing.err.find("data:"), std::string::npos) << "refused before the data is read: " << missing.err;
}

}  // namespace
}  // namespace histotrain
