// --balance on a 10:1 imbalanced set: both remedies train, say what they do, resume exactly, and the
// sampler works with data-parallel ranks.
#include <gtest/gtest.h>

#include <algorithm>

#include "test_util.h"

namespace histotrain {
namespace {

namespace fs = std::filesystem;
using testing::read_jsonl;
using testing::run_histotrain;
using testing::ScratchDir;

// A copy of the synthetic set where lung_n keeps its 40 tiles and every other class 4.
fs::path imbalanced_copy(const fs::path& to) {
  fs::copy(testing::synth_data(), to, fs::copy_options::recursive);
  for (const auto& entry : fs::recursive_directory_iterator(to)) {
    if (!entry.is_directory() || entry.path().filename() == "lung_n") continue;
    std::vector<fs::path> tiles;
    for (const auto& file : fs::directory_iterator(entry.path()))
      if (file.path().extension() == ".jpeg") tiles.push_back(file.path());
    std::sort(tiles.begin(), tiles.end());
    for (size_t i = 4; i < tiles.size(); ++i) fs::remove(tiles[i]);
  }
  return to;
}

// The weight the --balance line gives `name`.
double weight_in_log(const std::string& log, const std::string& name) {
  const size_t line = log.find("--balance ");
  const size_t at = log.find(" " + name + " ", line);
  if (line == std::string::npos || at == std::string::npos) return -1;
  return std::stod(log.substr(at + name.size() + 2));
}

std::string train_args(const fs::path& data, const fs::path& out, const std::string& balance) {
  return "train --data " + data.string() + " --groups " + (data / "groups.csv").string() +
         " --image-size 32 --batch-size 8 --epochs 2 --conv-grad native --quiet --balance " + balance +
         " --out " + out.string();
}

TEST(Balance, BothRemediesSayWhatTheyDoAndAResumedRunMatchesAnUninterruptedOne) {
  ScratchDir dir;
  const fs::path data = imbalanced_copy(dir / "data");
  for (const std::string balance : {"sampler", "loss"}) {
    const auto straight = run_histotrain(train_args(data, dir / (balance + "-straight"), balance));
    ASSERT_EQ(straight.exit_code, 0) << straight.err;
    EXPECT_NE(straight.err.find("--balance " + balance + ":"), std::string::npos) << straight.err;
    EXPECT_LT(weight_in_log(straight.err, "lung_n"), 0.5) << "lung_n holds ~70% of the images: " << straight.err;
    EXPECT_GT(weight_in_log(straight.err, "colon_aca"), 1.5) << straight.err;
    const auto halves = run_histotrain(train_args(data, dir / (balance + "-halves"), balance) + " --max-steps 7");
    ASSERT_EQ(halves.exit_code, 0) << halves.err;
    const auto resumed = run_histotrain("train --resume " + (dir / (balance + "-halves")).string() + " --max-steps 0 --quiet");
    ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
    const auto a = read_jsonl(dir / (balance + "-straight") / "metrics.jsonl");
    const auto b = read_jsonl(dir / (balance + "-halves") / "metrics.jsonl");
    ASSERT_EQ(a.size(), 2u);
    ASSERT_EQ(b.back()["epoch"], 2) << "the stop inside epoch 2 recorded it in part; the resume finished it";
    for (const char* key : {"train_loss", "val_loss", "val_acc"})
      EXPECT_NEAR(b.back()[key].get<double>(), a.back()[key].get<double>(), 1e-4) << balance << " " << key;
  }
  const auto bad = run_histotrain(train_args(data, dir / "bad", "oversample"));
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
}

TEST(Balance, TheSamplerSplitsOneBalancedOrderAmongDataParallelRanks) {
  ScratchDir dir;
  const fs::path data = imbalanced_copy(dir / "data");
  const auto launched =
      run_histotrain("launch -n 2 --threads-per-rank 1 -- " + train_args(data, dir / "run", "sampler"));
  ASSERT_EQ(launched.exit_code, 0) << launched.err;
  EXPECT_NE(launched.err.find("--balance sampler:"), std::string::npos) << launched.err;
  const auto summary = testing::read_json(dir / "run/summary.json");
  EXPECT_EQ(summary["world_size"], 2);
  EXPECT_EQ(summary["config"]["balance"], "sampler");
  EXPECT_EQ(summary["val"]["images"], summary["val_images"]);
}

}  // namespace
}  // namespace histotrain
