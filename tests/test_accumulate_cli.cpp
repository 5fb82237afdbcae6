// Gradient accumulation end to end (train --accumulate N): N batches of B make the update of one
// batch of N x B, in one process and over two ranks, and a resumed run ends where an
// uninterrupted one does.
//
// BatchNorm in training mode normalises each forward pass by its own images' statistics, so 4
// batches of 8 and one batch of 32 are different computations, here as in PyTorch: on the
// synthetic tiles at 48 px after 4 steps the weights of the two differ by about half the size of
// the update (docs/stain.md). The comparisons below therefore train the classifier head on a
// frozen backbone (BatchNorm on its running statistics), where every image's gradient is its
// own: the updates must agree to fp32 summation order, 1e-5 on weights of order 0.1.
#include <gtest/gtest.h>

#include "cli_harness.h"
#include "dist_fixtures.h"
#include "model/safetensors.h"
#include "test_util.h"

namespace histotrain {
namespace {

using namespace histotrain::testing;

Args head_args(const std::filesystem::path& init, const std::filesystem::path& out, int batch, int accumulate) {
  const std::string data = synth_data();
  return {"train", "--data", data, "--groups", data + "/groups.csv", "--arch", "resnet10", "--image-size", "48",
          "--epochs", "1", "--max-steps", "3", "--bootstrap", "0", "--deterministic", "--conv-grad", "native",
          "--init", init.string(), "--freeze-backbone", "--batch-size", std::to_string(batch), "--accumulate",
          std::to_string(accumulate), "--out", out.string(), "--quiet"};
}

torch::Tensor head_weight(const std::filesystem::path& run) {
  return read_safetensors(run / "model.safetensors").tensors.at("fc.weight");
}

// A run whose weights the head runs start from.
std::filesystem::path initial_run(const ScratchDir& dir) {
  const std::string data = synth_data();
  const auto init = dir / "init";
  const Finished trained = run_cli({"train", "--data", data, "--groups", data + "/groups.csv", "--arch", "resnet10",
                                    "--image-size", "48", "--epochs", "1", "--max-steps", "2", "--bootstrap", "0",
                                    "--out", init.string(), "--quiet"});
  EXPECT_EQ(trained.exit_code, 0) << trained.err;
  return init;
}

TEST(Accumulate, FourBatchesOfEightMakeTheUpdateOfOneBatchOf32) {
  ScratchDir dir;
  const auto init = initial_run(dir);
  const Finished whole = run_cli(head_args(init, dir / "whole", 32, 1));
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  const Finished parts = run_cli(head_args(init, dir / "parts", 8, 4));
  ASSERT_EQ(parts.exit_code, 0) << parts.err;
  EXPECT_NE(parts.err.find("batch 8 x 4 accumulated = 32 per step"), std::string::npos) << parts.err;
  const auto summary = read_json(dir / "parts" / "summary.json");
  EXPECT_EQ(summary["global_batch"], 32);
  EXPECT_EQ(summary["steps"], 3) << "a step is an update of 32 images";
  EXPECT_LT((head_weight(dir / "parts") - head_weight(dir / "whole")).abs().max().item<double>(), 1e-5);
  EXPECT_GT((head_weight(dir / "whole") - head_weight(init)).abs().max().item<double>(), 1e-3) << "the head moved";
  // Batches of 8 without accumulation take other steps: the comparison can tell them apart.
  const Finished small = run_cli(head_args(init, dir / "small", 8, 1));
  ASSERT_EQ(small.exit_code, 0) << small.err;
  EXPECT_GT((head_weight(dir / "small") - head_weight(dir / "whole")).abs().max().item<double>(), 1e-3);
}

// Two ranks of 8 x 2 against two ranks of 16: the all-reduce of the accumulated sum, once per update.
TEST(Accumulate, TwoRanksAllReduceTheAccumulatedGradientsOncePerUpdate) {
  ScratchDir dir;
  const auto init = initial_run(dir);
  const Finished whole = run_cli(kLaunch2 + head_args(init, dir / "whole", 16, 1));
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  const Finished parts = run_cli(kLaunch2 + head_args(init, dir / "parts", 8, 2));
  ASSERT_EQ(parts.exit_code, 0) << parts.err;
  EXPECT_NE(parts.err.find("batch 8 x 2 accumulated = 16 per rank x 2 ranks = global batch 32"), std::string::npos)
      << parts.err;
  EXPECT_LT((head_weight(dir / "parts") - head_weight(dir / "whole")).abs().max().item<double>(), 1e-5);
  EXPECT_GT((head_weight(dir / "whole") - head_weight(init)).abs().max().item<double>(), 1e-3) << "the head moved";
}

// The whole model (BatchNorm in training mode) in accumulated steps, stopped and resumed.
TEST(Accumulate, AResumedRunEndsWhereAnUninterruptedOneDoes) {
  ScratchDir dir;
  const std::string data = synth_data();
  const auto args = [&](const std::filesystem::path& out) {
    return Args{"train", "--data", data, "--groups", data + "/groups.csv", "--arch", "resnet10", "--image-size", "48",
                "--epochs", "2", "--batch-size", "8", "--accumulate", "2", "--bootstrap", "0", "--deterministic",
                "--conv-grad", "native", "--out", out.string(), "--quiet"};
  };
  ASSERT_EQ(run_cli(args(dir / "straight")).exit_code, 0);
  const Finished first = run_cli(args(dir / "halves") + Args{"--max-steps", "13"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const Finished resumed = run_cli({"train", "--resume", (dir / "halves").string(), "--max-steps", "0", "--quiet"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  const auto a = read_jsonl(dir / "straight" / "metrics.jsonl");
  const auto b = read_jsonl(dir / "halves" / "metrics.jsonl");
  for (const char* key : {"train_loss", "val_loss", "val_acc"})
    EXPECT_NEAR(b.back()[key].get<double>(), a.back()[key].get<double>(), 1e-5) << key;
  EXPECT_EQ(b.back()["step"], 2 * (160 / 16));
  const Finished refused = run_cli(args(dir / "bad") + Args{"--pipeline-stages", "2"});
  EXPECT_EQ(refused.exit_code, 2) << refused.err;
}

}  // namespace
}  // namespace histotrain
