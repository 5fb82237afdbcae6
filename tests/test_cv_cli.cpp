// histotrain cv: folds of whole source groups, one resumable run per fold, the report, an
// interrupted cv that continues, and the paired comparison of two recipes.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "test_util.h"
#include "core/fold_statistics.h"
#include "train/cross_validation.h"
#include "util/files.h"

namespace histotrain {
namespace {

namespace fs = std::filesystem;
using testing::read_json;
using testing::run_histotrain;
using testing::ScratchDir;

std::string cv_args(const std::string& data, const fs::path& out) {
  return "cv --folds 3 --data " + data + " --groups " + data + "/groups.csv --image-size 32 --batch-size 16 "
         "--epochs 1 --threads 2 --bootstrap 100 --keep-models --quiet --out " + out.string();
}

TEST(CrossValidation, FoldsHoldWholeGroupsAndEveryImageOnceThenTheReportAndTheComparison) {
  ScratchDir dir;
  const std::string data = testing::synth_data();
  const auto a = dir / "a";
  const auto run = run_histotrain(cv_args(data, a));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("| mean ± sd |"), std::string::npos) << run.out;

  // Every image in exactly one fold; no source group in two.
  std::set<std::string> seen;
  std::map<std::string, int> fold_of_group;
  std::map<std::string, std::string> group_of;
  const std::string groups_csv = testing::read_text(a / "groups.csv");
  size_t start = groups_csv.find('\n') + 1;
  while (start < groups_csv.size()) {
    const size_t end = groups_csv.find('\n', start);
    const std::string line = groups_csv.substr(start, end - start);
    group_of[line.substr(0, line.find(','))] = line.substr(line.rfind(',') + 1);
    start = end + 1;
  }
  for (int fold = 1; fold <= 3; ++fold)
    for (const auto& name : read_list_file(a / "folds" / ("fold-" + std::to_string(fold) + ".txt"))) {
      EXPECT_TRUE(seen.insert(name).second) << name << " in two folds";
      const auto [at, added] = fold_of_group.emplace(group_of.at(name), fold);
      EXPECT_EQ(at->second, fold) << "group " << group_of.at(name) << " split across folds";
    }
  EXPECT_EQ(seen.size(), 200u);

  EXPECT_TRUE(fs::exists(a / "folds.png")) << testing::read_text(a / "cv.md");
  const auto report = read_json(a / "cv.json");
  ASSERT_EQ(report["per_fold"].size(), 3u);
  for (int fold = 1; fold <= 3; ++fold) {
    const auto summary = read_json(a / ("fold-" + std::to_string(fold)) / "summary.json");
    EXPECT_EQ(report["per_fold"][fold - 1]["accuracy"], summary["val"]["accuracy"]);
    EXPECT_EQ(summary["val"]["confidence_intervals"]["unit"], "source group") << "each fold's groups come along";
  }
  const auto& accuracy = report["summary"]["accuracy"];
  EXPECT_LE(accuracy["ci"][0].get<double>(), accuracy["mean"].get<double>());
  EXPECT_GE(accuracy["ci"][1].get<double>(), accuracy["mean"].get<double>());

  // Run again: every fold is read, none retrained.
  const auto again = run_histotrain(cv_args(data, a));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("fold 3 of 3: done"), std::string::npos) << again.err;
  EXPECT_EQ(read_json(a / "cv.json")["per_fold"], report["per_fold"]);

  // An interrupted cv: fold 2's run folder removed, fold 3's summary removed (it resumes from its
  // checkpoint, which is finished, and writes it again).
  fs::remove_all(a / "fold-2");
  fs::remove(a / "fold-3" / "summary.json");
  const auto continued = run_histotrain(cv_args(data, a));
  ASSERT_EQ(continued.exit_code, 0) << continued.err;
  EXPECT_NE(continued.err.find("fold 1 of 3: done"), std::string::npos) << continued.err;
  EXPECT_NE(continued.err.find("fold 2 of 3: validating on"), std::string::npos) << continued.err;
  EXPECT_NE(continued.err.find("fold 3 of 3: continues from its checkpoint"), std::string::npos) << continued.err;

  // B: the same folds without label smoothing; the comparison pairs them fold by fold.
  const auto b = dir / "b";
  ASSERT_EQ(run_histotrain(cv_args(data, b) + " --label-smoothing 0").exit_code, 0);
  const auto compared = run_histotrain("cv --compare " + a.string() + " " + b.string() + " --json");
  ASSERT_EQ(compared.exit_code, 0) << compared.err;
  const auto comparison = nlohmann::json::parse(compared.out);
  const auto& difference = comparison["metrics"]["accuracy"];
  ASSERT_EQ(difference["per_fold"].size(), 3u);
  EXPECT_NEAR(difference["per_fold"][0].get<double>(),
              read_json(a / "cv.json")["per_fold"][0]["accuracy"].get<double>() -
                  read_json(b / "cv.json")["per_fold"][0]["accuracy"].get<double>(), 1e-12);
  EXPECT_TRUE(difference.contains("verdict"));

  // Other folds cannot be compared, and a folder of other folds is not reused.
  const auto c = dir / "c";
  ASSERT_EQ(run_histotrain(cv_args(data, c) + " --seed 9").exit_code, 0);
  const auto mismatch = run_histotrain("cv --compare " + a.string() + " " + c.string());
  EXPECT_EQ(mismatch.exit_code, 1);
  EXPECT_NE(mismatch.err.find("same folds"), std::string::npos) << mismatch.err;
  const auto reused = run_histotrain(cv_args(data, a) + " --seed 9");
  EXPECT_EQ(reused.exit_code, 1);
  EXPECT_NE(reused.err.find("another cross-validation"), std::string::npos) << reused.err;
}

TEST(CrossValidation, TIntervalsUseStudentsQuantiles) {
  const auto s = spread({0.90, 0.92, 0.94});
  EXPECT_NEAR(s["mean"].get<double>(), 0.92, 1e-12);
  EXPECT_NEAR(s["sd"].get<double>(), 0.02, 1e-12);
  EXPECT_NEAR(s["ci"][1].get<double>() - 0.92, 4.303 * 0.02 / std::sqrt(3.0), 1e-9);
  EXPECT_TRUE(spread({0.5})["ci"].is_null());
}

}  // namespace
}  // namespace histotrain
