// Precision end to end: the binary trains in bf16 and evaluates as trained; --amp auto measures,
// caches and trains as the chosen flags would.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/compat.h"
#include "cli_harness.h"
#include "test_util.h"

namespace histotrain {
namespace {

TEST(MixedPrecision, CliTrainsInBf16AndEvaluatesInTheSamePrecisionByDefault) {
  testing::ScratchDir dir;
  const std::string data = testing::shared_synthetic_dataset(40, 96).string();
  const auto run = dir / "run";
  const auto trained = testing::run_histotrain("train --data " + data + " --groups " + data +
                                               "/groups.csv --image-size 48 --batch-size 16 --epochs 1 --amp bf16 "
                                               "--channels-last --quiet --out " + run.string());
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  EXPECT_NE(trained.err.find("bf16 autocast, channels-last"), std::string::npos) << trained.err;
  const auto same = testing::run_histotrain("eval --checkpoint " + run.string() + " --data " + data + " --json --quiet");
  ASSERT_EQ(same.exit_code, 0) << same.err;
  const auto bf16 = nlohmann::json::parse(same.out);
  EXPECT_EQ(bf16["amp"], "bf16");
  const auto fp32 = nlohmann::json::parse(
      testing::run_histotrain("eval --checkpoint " + run.string() + " --data " + data + " --json --quiet --amp none").out);
  EXPECT_EQ(fp32["amp"], "none");
  EXPECT_NEAR(fp32["accuracy"].get<double>(), bf16["accuracy"].get<double>(), 0.05);
  const auto fp16 = testing::run_histotrain("train --data " + data + " --amp fp16 --out " + (dir / "x").string());
  if (!compat::cuda_available()) EXPECT_EQ(fp16.exit_code, 2) << fp16.err;
}

// --amp auto measures once, caches, trains as chosen (exactly as the same flags given by hand:
// the measurement leaves the random generator alone), and records the choice where eval reads it.
TEST(MixedPrecision, CliAutoMeasuresOnceThenTrainsLikeTheChosenFlags) {
  testing::ScratchDir dir;
  const std::string data = testing::shared_synthetic_dataset(40, 96).string();
  const std::vector<std::string> common = {"--data", data, "--groups", data + "/groups.csv", "--image-size", "32",
                                          "--batch-size", "16", "--epochs", "1", "--threads", "2", "--deterministic",
                                          "--quiet", "--cache-dir", (dir / "tiles").string()};
  // train COMMON EXTRA..., with HISTOTRAIN_CACHE (where --amp auto keeps its decision) in the test's folder.
  const auto train = [&](const std::vector<std::string>& extra) {
    testing::Invocation call;
    call.args = {"train"};
    call.args.insert(call.args.end(), common.begin(), common.end());
    call.args.insert(call.args.end(), extra.begin(), extra.end());
    call.env = {{"HISTOTRAIN_CACHE", (dir / "cache").string()}};
    return testing::run_cli(call);
  };
  const auto first = train({"--amp", "auto", "--out", (dir / "a").string()});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_NE(first.err.find("--amp auto: "), std::string::npos) << first.err;
  EXPECT_NE(first.err.find("(measured: fp32 "), std::string::npos) << first.err;
  const auto summary = testing::read_json(dir / "a" / "summary.json");
  const auto& choice = summary["precision_choice"];
  ASSERT_TRUE(choice.is_object()) << summary.dump();
  EXPECT_FALSE(choice["from_cache"].get<bool>());
  EXPECT_EQ(choice["images_per_s"].size(), 3u);
  EXPECT_EQ(summary["config"]["amp"], choice["amp"]) << "the run holds the chosen precision, not 'auto'";
  EXPECT_EQ(summary["config"]["channels_last"], choice["channels_last"]);
  EXPECT_EQ(testing::read_json(dir / "a" / "checkpoint.json")["config"]["amp"], choice["amp"]);
  EXPECT_TRUE(std::filesystem::exists(dir / "cache" / "precision.json"));

  const auto second = train({"--amp", "auto", "--out", (dir / "b").string()});
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_NE(second.err.find("(cached measurement: "), std::string::npos) << second.err;
  EXPECT_TRUE(testing::read_json(dir / "b" / "summary.json")["precision_choice"]["from_cache"].get<bool>());

  std::vector<std::string> chosen = {"--amp", choice["amp"].get<std::string>(), "--out", (dir / "c").string()};
  if (choice["channels_last"].get<bool>()) chosen.push_back("--channels-last");
  const auto by_hand = train(chosen);
  ASSERT_EQ(by_hand.exit_code, 0) << by_hand.err;
  EXPECT_EQ(testing::read_jsonl(dir / "a" / "metrics.jsonl")[0]["train_loss"],
            testing::read_jsonl(dir / "c" / "metrics.jsonl")[0]["train_loss"]);
  EXPECT_TRUE(testing::read_json(dir / "c" / "summary.json")["precision_choice"].is_null());
}

}  // namespace
}  // namespace histotrain
