// The fast training path's flags end to end: the weight average and test-time augmentation
// through train, resume and eval; --cuda-graph on without CUDA; a validation list as the split.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/compat.h"
#include "test_util.h"
#include "train/graphed_step.h"
#include "util/files.h"

namespace histotrain {
namespace {

using testing::read_json;
using testing::run_histotrain;
using testing::ScratchDir;

std::string fast_args(const std::string& data, const std::filesystem::path& out) {
  return "train --data " + data + " --groups " + data + "/groups.csv --image-size 32 --batch-size 16 --epochs 2 "
         "--threads 2 --quiet --ema 0.9 --tta --conv-grad native --out " + out.string();  // native: see test_cli.cpp
}

TEST(FastPath, EmaAndTtaTrainResumeAndReport) {
  ScratchDir dir;
  const std::string data = testing::shared_synthetic_dataset(40, 96).string();
  const auto straight = run_histotrain(fast_args(data, dir / "straight"));
  ASSERT_EQ(straight.exit_code, 0) << straight.err;
  const auto summary = read_json(dir / "straight/summary.json");
  EXPECT_EQ(summary["ema"].get<double>(), 0.9);
  EXPECT_TRUE(summary["tta"].get<bool>());
  EXPECT_FALSE(summary["cuda_graph"].get<bool>());
  EXPECT_GT(summary["best_val_acc"].get<double>(), 0.0);
  // The average is part of the training state: a stopped and resumed run validates the same.
  ASSERT_EQ(run_histotrain(fast_args(data, dir / "halves") + " --max-steps 10").exit_code, 0);
  const auto resumed = run_histotrain("train --resume " + (dir / "halves").string() + " --max-steps 0 --quiet");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  const auto a = testing::read_jsonl(dir / "straight/metrics.jsonl"), b = testing::read_jsonl(dir / "halves/metrics.jsonl");
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_NEAR(b[1]["val_loss"].get<double>(), a[1]["val_loss"].get<double>(), 1e-4);
  // The saved model is the average: eval, with TTA, on the validation tiles reproduces the last
  // validation (a folder of links to them, by class).
  const std::filesystem::path val = dir / "val";
  for (const std::string& line : read_list_file(dir / "straight/val_images.txt")) {
    const std::filesystem::path tile(line);
    std::filesystem::create_directories(val / tile.parent_path().filename());
    std::filesystem::create_symlink(tile, val / tile.parent_path().filename() / tile.filename());
  }
  const auto eval = run_histotrain("eval --checkpoint " + (dir / "straight").string() + " --data " + val.string() +
                                   " --tta --json --quiet --cache-dir " + (dir / "cache").string());
  ASSERT_EQ(eval.exit_code, 0) << eval.err;
  const auto report = nlohmann::json::parse(eval.out);
  EXPECT_EQ(report["images"].get<int>(), summary["val_images"].get<int>());
  EXPECT_DOUBLE_EQ(report["accuracy"].get<double>(), a[1]["val_acc"].get<double>());
  EXPECT_NEAR(report["loss"].get<double>(), a[1]["val_loss"].get<double>(), 1e-4);
}

TEST(FastPath, CudaGraphOnWithoutCudaIsAUsageError) {
  if (GraphedTrainStep::available() && compat::cuda_available()) GTEST_SKIP() << "CUDA graphs are available here";
  ScratchDir dir;
  const std::string data = testing::shared_synthetic_dataset(40, 96).string();
  const auto result = run_histotrain(fast_args(data, dir / "run") + " --cuda-graph on");
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_NE(result.err.find("--cuda-graph on"), std::string::npos) << result.err;
}

TEST(FastPath, ValidationListIsTheSplit) {
  ScratchDir dir;
  const std::string data = testing::shared_synthetic_dataset(40, 96).string();
  const auto first = run_histotrain(fast_args(data, dir / "first") + " --max-steps 1");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const auto again = run_histotrain(
      "train --data " + data + " --val-images " + (dir / "first/val_images.txt").string() +
      " --image-size 32 --batch-size 16 --epochs 1 --max-steps 1 --threads 2 --quiet --out " + (dir / "second").string());
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(testing::read_text(dir / "second/val_images.txt"), testing::read_text(dir / "first/val_images.txt"));
  EXPECT_EQ(testing::read_text(dir / "second/train_images.txt"), testing::read_text(dir / "first/train_images.txt"));
}

}  // namespace
}  // namespace histotrain
