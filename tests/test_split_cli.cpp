// End-to-end: near-copy groups, split audits and the split `train` makes by default.
#include <gtest/gtest.h>

#include <fstream>

#include "data/groups.h"
#include "test_util.h"
#include "util/files.h"

namespace histotrain {
namespace {

using testing::run_histotrain;
using testing::ScratchDir;

// 200 tiles: 100 source scenes, each saved as 2 copies (flips / 90-degree rotations).
using testing::synth_data;

int64_t lines_in(const std::filesystem::path& path) { return static_cast<int64_t>(read_list_file(path).size()); }

TEST(SplitCli, GroupsCommandRecoversTheSyntheticScenes) {
  ScratchDir dir;
  const auto out = dir / "groups.csv";
  const auto r = run_histotrain("groups --quiet --data " + synth_data() + " --out " + out.string() + " --reference " +
                                synth_data() + "/groups.csv");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("200 images -> 100 groups"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("pair precision 1.000, pair recall 1.000"), std::string::npos) << r.out;
  EXPECT_EQ(read_groups_csv(out.string()).size(), 200u);
  EXPECT_EQ(run_histotrain("groups --data " + synth_data() + " --out x.csv --threshold 2").exit_code, 2);
}

TEST(SplitCli, DefaultSplitKeepsFoundGroupsApartAndTheAuditConfirmsIt) {
  ScratchDir dir;
  const auto run = dir / "run";
  const auto r = run_histotrain("train --data " + synth_data() + " --image-size 32 --batch-size 16 --epochs 1 "
                                "--max-steps 1 --quiet --out " + run.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto summary = testing::read_json(run / "summary.json");
  EXPECT_EQ(summary["split"], "group");
  EXPECT_NE(summary["groups"].get<std::string>().find("100 near-copy groups found"), std::string::npos)
      << summary["groups"];
  EXPECT_EQ(lines_in(run / "train_images.txt") + lines_in(run / "val_images.txt"), 200);

  const auto audit = run_histotrain("split-audit --quiet --train " + (run / "train_images.txt").string() + " --test " +
                                    (run / "val_images.txt").string() + " --json " + (dir / "audit.json").string());
  ASSERT_EQ(audit.exit_code, 0) << audit.err;
  EXPECT_EQ(testing::read_json(dir / "audit.json")["leaked"], 0) << audit.out;
}

TEST(SplitCli, RandomSplitIsAuditedAndWarnedAbout) {
  ScratchDir dir;
  const auto run = dir / "run";
  const auto r = run_histotrain("train --data " + synth_data() + " --split random --image-size 32 --batch-size 16 "
                                "--epochs 1 --max-steps 1 --quiet --out " + run.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("warning: --split random"), std::string::npos) << r.err;
  const auto summary = testing::read_json(run / "summary.json");
  EXPECT_EQ(summary["split"], "random");
  // Each scene has 2 copies: a random 20% validation share finds its twin in training ~80% of the time.
  EXPECT_GT(summary["split_audit"]["leaked_fraction"].get<double>(), 0.5);
  EXPECT_EQ(run_histotrain("train --data " + synth_data() + " --split random --groups " + synth_data() +
                           "/groups.csv --out " + (dir / "r2").string())
                .exit_code,
            2);
}

TEST(SplitCli, AuditOfFoldersAndMissingListsAreClear) {
  const auto same = run_histotrain("split-audit --quiet --train " + synth_data() + " --test " + synth_data());
  ASSERT_EQ(same.exit_code, 0) << same.err;
  EXPECT_NE(same.out.find("200 of 200 test images (100.0%)"), std::string::npos) << same.out;
  const auto missing = run_histotrain("split-audit --train /nonexistent/list.txt --test " + synth_data());
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("cannot read list file"), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace histotrain
