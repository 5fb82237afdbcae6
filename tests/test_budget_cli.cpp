// --time-budget end to end: the run stops when the budget is spent, the rate has decayed to
// about zero by then, and a run stopped early and resumed goes on with the same clock.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace histotrain {
namespace {

using testing::read_json;
using testing::read_jsonl;
using testing::run_histotrain;
using testing::ScratchDir;

// One thread: the tests are about the clock, and ctest runs two at a time on two cores.
std::string budget_args(const std::string& data, const std::filesystem::path& out, double budget) {
  return "train --data " + data + " --groups " + data + "/groups.csv --image-size 32 --batch-size 16 --threads 1 "
         "--warmup-epochs 0.5 --quiet --time-budget " + std::to_string(budget) + " --out " + out.string();
}

// The longest step of the run, from its epochs' records.
double longest_step_seconds(const std::vector<nlohmann::json>& records, int64_t steps_per_epoch) {
  double longest = 0;
  for (const auto& r : records) {
    const int64_t steps = r.value("epoch_steps", steps_per_epoch);
    longest = std::max(longest, r["epoch_train_s"].get<double>() / std::max<int64_t>(1, steps));
  }
  return longest;
}

TEST(TimeBudget, TheRunStopsWhenTheBudgetIsSpentWithTheRateDecayed) {
  constexpr double kBudget = 6;
  ScratchDir dir;
  const std::string data = testing::synth_data();
  const auto r = run_histotrain(budget_args(data, dir / "run", kBudget));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("time budget 6.0 s"), std::string::npos) << r.err;
  const auto summary = read_json(dir / "run/summary.json");
  const auto records = read_jsonl(dir / "run/metrics.jsonl");
  ASSERT_FALSE(records.empty());
  const int64_t steps_per_epoch = summary["train_images"].get<int64_t>() / 16;
  const double step = longest_step_seconds(records, steps_per_epoch);
  const double train_s = summary["train_s"].get<double>();
  EXPECT_TRUE(summary["time_budget_spent"].get<bool>());
  // Whole steps: the last one began before the budget ran out.
  EXPECT_GE(train_s, kBudget);
  EXPECT_LE(train_s, kBudget + step + 0.5) << "longest step " << step << " s";
  EXPECT_EQ(records.back()["step"], summary["steps"]) << "the last record is the budget's end";
  // The last step's rate is what the decay leaves one step before the end.
  const double warmup_end = summary["warmup_end_s"].get<double>();
  const double peak = summary["peak_lr"].get<double>();
  EXPECT_LE(records.back()["lr"].get<double>(), peak * (step + 0.5) / (kBudget - warmup_end));
  EXPECT_GE(summary["command_s"].get<double>(), train_s);
  EXPECT_TRUE(records.back().contains("val_acc")) << "the run validates when the budget is spent";
}

TEST(TimeBudget, AResumedRunGoesOnWithTheSameClock) {
  constexpr double kBudget = 12;  // 6 steps take 1-3 s here, 8 s on a crowded machine
  ScratchDir dir;
  const std::string data = testing::synth_data();
  ASSERT_EQ(run_histotrain(budget_args(data, dir / "run", kBudget) + " --max-steps 6").exit_code, 0);
  const auto first = read_json(dir / "run/checkpoint.json");
  ASSERT_TRUE(first.contains("warmup_end_s")) << "the warm-up (5 steps) ended before the stop";
  const double spent_before = first["train_seconds"].get<double>();
  ASSERT_LT(spent_before, kBudget);
  const auto resumed = run_histotrain("train --resume " + (dir / "run").string() + " --max-steps 0 --quiet");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  const auto summary = read_json(dir / "run/summary.json");
  const auto records = read_jsonl(dir / "run/metrics.jsonl");
  const double step = longest_step_seconds(records, summary["train_images"].get<int64_t>() / 16);
  EXPECT_TRUE(summary["time_budget_spent"].get<bool>());
  EXPECT_GE(summary["train_s"].get<double>(), kBudget) << "the budget counts the steps before the stop";
  EXPECT_LE(summary["train_s"].get<double>(), kBudget + step + 0.5);
  EXPECT_EQ(summary["warmup_end_s"].get<double>(), first["warmup_end_s"].get<double>());
  EXPECT_GT(summary["steps"].get<int64_t>(), 6);
}

// Progressive resizing over a budget: the side grows 16 -> 32 -> 48 px, every batch is averaged
// down from the one 48 px cache (no other size is decoded), and validation is at 48 px. A resumed
// run takes up the side its clock gives.
TEST(TimeBudget, ProgressiveResizingGrowsToTheFullSideFromOneCache) {
  ScratchDir dir;
  const std::string data = testing::synth_data();
  const std::string args = "train --data " + data + " --groups " + data + "/groups.csv --image-size 48 "
                           "--progressive-from 16 --progressive-until 0.6 --batch-size 16 --threads 1 --quiet "
                           "--time-budget 8 --cache-dir " + (dir / "cache").string() + " --out " + (dir / "run").string();
  const auto first = run_histotrain(args + " --max-steps 3");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_NE(first.err.find("image side 16 px from step 1\n"), std::string::npos) << first.err;
  const auto resumed = run_histotrain("train --resume " + (dir / "run").string() + " --max-steps 0 --quiet");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  // The resumed process says its side from its first step on, then each change.
  EXPECT_NE(resumed.err.find("px from step 4\n"), std::string::npos) << resumed.err;
  EXPECT_NE(resumed.err.find("image side 48 px from step"), std::string::npos) << resumed.err;
  const size_t at32 = (first.err + resumed.err).find("image side 32 px");
  EXPECT_NE(at32, std::string::npos) << "the side grows through 32 px";

  std::vector<std::string> caches;
  for (const auto& entry : std::filesystem::directory_iterator(dir / "cache"))
    caches.push_back(entry.path().filename().string());
  ASSERT_EQ(caches.size(), 1u) << "one cache, at --image-size";
  EXPECT_NE(caches[0].find("-48px"), std::string::npos) << caches[0];
  const auto summary = read_json(dir / "run/summary.json");
  EXPECT_EQ(summary["image_size"], 48);
  EXPECT_TRUE(summary["time_budget_spent"].get<bool>());
  EXPECT_TRUE(read_jsonl(dir / "run/metrics.jsonl").back().contains("val_acc"));
}

}  // namespace
}  // namespace histotrain
