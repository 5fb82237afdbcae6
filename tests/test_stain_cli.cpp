// Stain from the command line: a run normalised to its training tiles' stains keeps the reference
// in checkpoint.json, and eval and predict apply what that file says; restain writes the copies a
// stain-shift benchmark validates on.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "cli_harness.h"
#include "test_util.h"
#include "util/csv.h"

namespace histotrain {
namespace {

namespace fs = std::filesystem;
using testing::read_json;
using testing::read_text;
using testing::run_cli;
using testing::ScratchDir;

std::vector<std::string> train_args(const fs::path& out) {
  return {"train", "--data", testing::synth_data(), "--groups", testing::synth_data() + "/groups.csv", "--arch",
          "resnet10", "--image-size", "48", "--epochs", "1", "--batch-size", "16", "--bootstrap", "0", "--out",
          out.string(), "--cache-dir", (out.parent_path() / "cache").string()};
}

std::vector<std::string> two_epochs(std::vector<std::string> args) {
  *(std::find(args.begin(), args.end(), "--epochs") + 1) = "2";
  return args;
}

std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

// Predicted probabilities of every validation tile, as eval's predictions CSV gives them.
std::string eval_predictions(const fs::path& run, const fs::path& csv) {
  const auto eval = run_cli({"eval", "--checkpoint", run.string(), "--data", testing::synth_data(), "--bootstrap", "0",
                             "--predictions", csv.string(), "--cache-dir", (run.parent_path() / "cache").string(),
                             "--quiet"});
  EXPECT_EQ(eval.exit_code, 0) << eval.err;
  return read_text(csv);
}

TEST(StainCli, TheCheckpointsNormalisationIsWhatEvalApplies) {
  ScratchDir dir;
  const fs::path run = dir / "run";
  const auto trained = run_cli(with(train_args(run), {"--stain-normalize", "macenko", "--stain-augment", "hed"}));
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  EXPECT_NE(trained.err.find("applied once into the tile cache"), std::string::npos) << trained.err;
  nlohmann::json meta = read_json(run / "checkpoint.json");
  ASSERT_EQ(meta["stain"]["method"], "macenko") << meta.dump();
  EXPECT_NE(meta["stain"]["source"].get<std::string>().find("training tiles"), std::string::npos);
  EXPECT_EQ(meta["config"]["stain_augment"], "hed");

  // The same run without the HED jitter trains on other pixels: the augmentation reached the batches.
  const auto plain = run_cli(with(train_args(dir / "plain"), {"--stain-normalize", "macenko"}));
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_NE(testing::read_jsonl(dir / "plain" / "metrics.jsonl").front()["train_loss"],
            testing::read_jsonl(run / "metrics.jsonl").front()["train_loss"]);

  const std::string as_trained = eval_predictions(run, dir / "a.csv");
  EXPECT_EQ(eval_predictions(run, dir / "b.csv"), as_trained) << "the same reference gives the same predictions";
  // Another lab's stains in checkpoint.json: eval normalises to them, and the predictions move.
  meta["stain"]["h"] = {0.30, 0.50, 0.81};
  meta["stain"]["e"] = {0.05, 0.95, 0.31};
  const double nh = std::sqrt(0.30 * 0.30 + 0.50 * 0.50 + 0.81 * 0.81), ne = std::sqrt(0.05 * 0.05 + 0.95 * 0.95 + 0.31 * 0.31);
  for (int k = 0; k < 3; ++k) {
    meta["stain"]["h"][k] = meta["stain"]["h"][k].get<double>() / nh;
    meta["stain"]["e"][k] = meta["stain"]["e"][k].get<double>() / ne;
  }
  std::ofstream(run / "checkpoint.json") << meta.dump(2);
  EXPECT_NE(eval_predictions(run, dir / "c.csv"), as_trained);
  // A reference that is not one is refused, not applied.
  meta["stain"]["max_h"] = -3;
  std::ofstream(run / "checkpoint.json") << meta.dump(2);
  const auto refused = run_cli({"eval", "--checkpoint", run.string(), "--data", testing::synth_data(), "--quiet"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("max_h"), std::string::npos) << refused.err;
}

TEST(StainCli, AReferenceTileAndReinhardReachPredict) {
  ScratchDir dir;
  const fs::path run = dir / "run";
  fs::path reference;
  for (const auto& entry : fs::recursive_directory_iterator(testing::synth_data()))
    if (entry.path().extension() == ".jpeg") reference = entry.path();
  const auto trained = run_cli(with(train_args(run), {"--stain-normalize", "reinhard", "--stain-reference", reference.string()}));
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  const nlohmann::json meta = read_json(run / "checkpoint.json");
  EXPECT_EQ(meta["stain"]["method"], "reinhard");
  EXPECT_EQ(meta["stain"]["source"], reference.filename().string());
  const auto predicted = run_cli({"predict", "--checkpoint", run.string(), reference.string(), "--explain",
                                  (dir / "explained").string()});
  ASSERT_EQ(predicted.exit_code, 0) << predicted.err;
  EXPECT_TRUE(fs::exists(dir / "explained" / (reference.stem().string() + ".gradcam.png"))) << predicted.err;
  const auto missing = run_cli(with(train_args(dir / "run2"), {"--stain-normalize", "macenko", "--stain-reference",
                                                               (dir / "nowhere.png").string()}));
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("--stain-reference"), std::string::npos) << missing.err;
}

TEST(StainCli, RestainWritesPngCopiesWithTheirGroups) {
  ScratchDir dir;
  const auto same = run_cli({"restain", "--data", testing::synth_data(), "--groups", testing::synth_data() + "/groups.csv",
                             "--shift", "hed", "--strength", "0", "--out", (dir / "same").string(), "--quiet"});
  ASSERT_EQ(same.exit_code, 0) << same.err;
  const auto rows = parse_csv(read_text(dir / "same" / "groups.csv"), "groups.csv");
  EXPECT_EQ(rows.size(), 201u);  // the header and the 200 tiles, under their .png names
  EXPECT_EQ(fs::path(rows[1].fields[0]).extension(), ".png");
  const auto lab = run_cli({"restain", "--data", testing::synth_data(), "--shift", "lab", "--strength", "1", "--out",
                            (dir / "lab").string(), "--quiet"});
  ASSERT_EQ(lab.exit_code, 0) << lab.err;
  // A run evaluated on the unshifted copies scores as on the originals (strength 0 is lossless).
  const fs::path run = dir / "run";
  ASSERT_EQ(run_cli(train_args(run)).exit_code, 0);
  const auto on = [&](const fs::path& data) {
    const auto e = run_cli({"eval", "--checkpoint", run.string(), "--data", data.string(), "--bootstrap", "0", "--json",
                            "--quiet", "--cache-dir", (dir / "cache").string()});
    EXPECT_EQ(e.exit_code, 0) << e.err;
    return e.json().value("accuracy", -1.0);
  };
  EXPECT_DOUBLE_EQ(on(dir / "same"), on(testing::synth_data()));
  const auto into_data = run_cli({"restain", "--data", testing::synth_data(), "--out", testing::synth_data() + "/x"});
  EXPECT_EQ(into_data.exit_code, 2) << into_data.err;
}

// Mixup, CutMix and clipping draw from the step's own seed: a run stopped and resumed ends where
// an uninterrupted one does.
TEST(RecipePieces, MixedAndClippedRunsResumeExactly) {
  ScratchDir dir;
  const std::vector<std::string> pieces = {"--mixup", "0.8", "--cutmix", "1", "--mix-prob", "0.8", "--clip-grad", "1",
                                           "--deterministic", "--conv-grad", "native"};
  const auto straight = run_cli(with(two_epochs(train_args(dir / "straight")), pieces));
  ASSERT_EQ(straight.exit_code, 0) << straight.err;
  const auto halves = run_cli(with(with(two_epochs(train_args(dir / "halves")), pieces), {"--max-steps", "13"}));
  ASSERT_EQ(halves.exit_code, 0) << halves.err;
  const auto resumed = run_cli({"train", "--resume", (dir / "halves").string(), "--max-steps", "0", "--quiet"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  const auto a = testing::read_jsonl(dir / "straight" / "metrics.jsonl");
  const auto b = testing::read_jsonl(dir / "halves" / "metrics.jsonl");
  for (const char* key : {"train_loss", "val_loss", "val_acc"})
    EXPECT_NEAR(b.back()[key].get<double>(), a.back()[key].get<double>(), 1e-5) << key;
  const auto refused = run_cli(with(train_args(dir / "bad"), {"--mixup", "0.8", "--balance", "loss"}));
  EXPECT_EQ(refused.exit_code, 2) << refused.err;
}

}  // namespace
}  // namespace histotrain
