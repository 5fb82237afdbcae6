// Smoke test on real LC25000 tiles (../shared/data/lc25000-dev); skipped where they are absent.
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "leakage/group_agreement.h"
#include "leakage/group_finder.h"
#include "data/groups.h"
#include "leakage/split_audit.h"
#include "test_util.h"
#include "util/progress.h"

namespace histotrain {
namespace {

TEST(RealData, Lc25000TilesDecodeSplitByGroupAndTrain) {
  const auto root = testing::shared_data("lc25000-dev");
  if (root.empty()) GTEST_SKIP() << "../shared/data/lc25000-dev is not here";
  testing::ScratchDir dir;
  const auto run = dir / "run";
  const auto result = testing::run_histotrain(
      "train --data " + root.string() + " --groups " + (root / "groups.csv").string() +
      " --image-size 32 --epochs 1 --max-steps 30 --val-fraction 0.1 --quiet --out " + run.string());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  std::ifstream in(run / "summary.json");
  const auto summary = nlohmann::json::parse(in);
  EXPECT_EQ(summary["classes"].size(), 5u);
  EXPECT_EQ(summary["skipped_images"], 0);
  EXPECT_EQ(summary["steps"], 30);
  EXPECT_GT(summary["val_images"].get<int>(), 500);
  EXPECT_EQ(summary["val"]["images"], summary["val_images"]);
  EXPECT_EQ(summary["val"]["confidence_intervals"]["unit"], "source group");

  // Tiles of one source image are near-copies: an interval over source groups is wider than one
  // that resamples the tiles as if they were independent.
  const auto interval_width = [&](const std::string& unit) {
    const auto eval = testing::run_histotrain("eval --checkpoint " + run.string() + " --data " + root.string() +
                                              " --groups " + (root / "groups.csv").string() +
                                              " --bootstrap 500 --json --quiet --group-by " + unit);
    EXPECT_EQ(eval.exit_code, 0) << eval.err;
    const auto ci = nlohmann::json::parse(eval.out)["confidence_intervals"];
    EXPECT_EQ(ci["unit"], unit == "group" ? "source group" : "image");
    return ci["accuracy"][1].get<double>() - ci["accuracy"][0].get<double>();
  };
  EXPECT_GT(interval_width("group"), 1.5 * interval_width("image"));

  // The split keeps every source group on one side (same call the trainer makes).
  DataOptions options;
  options.root = root.string();
  options.image_size = 32;
  options.groups_csv = (root / "groups.csv").string();
  options.quiet = true;
  const TileDataset data = load_dataset(options);
  EXPECT_EQ(data.groups_missing, 0);
  const Split split = split_by_group(data.labels, data.groups, 0.1, 0);
  std::set<std::string> train_groups;
  for (int64_t i : split.train) train_groups.insert(data.groups[i]);
  for (int64_t i : split.val) ASSERT_EQ(train_groups.count(data.groups[i]), 0u) << data.groups[i];
}

// Near-copy groups found from the pixels against the published source-image groups (the 96 px copy
// of the tiles: same groups, a tenth of the decoding).
TEST(RealData, FoundNearCopyGroupsAgreeWithPublishedGroups) {
  const auto root = testing::shared_data("lc25000-dev-96");
  if (root.empty()) GTEST_SKIP() << "../shared/data/lc25000-dev-96 is not here";
  const ScanResult scan = scan_image_folder(root.string());
  const FoundGroups found = find_groups(scan, NearCopyOptions{}, 0, true);
  const auto csv = read_groups_csv((root / "groups.csv").string());
  const GroupAssignment published = assign_groups(scan, &csv);
  ASSERT_EQ(published.missing, 0);
  const GroupAgreement a = compare_groupings(found.group_of_image, published.group_of_image);
  std::printf("%zu tiles, %s: pair precision %.3f, recall %.3f, adjusted Rand %.3f (%lld vs %lld groups)\n",
              scan.images.size(), format_duration(found.seconds).c_str(), a.pair_precision, a.pair_recall,
              a.adjusted_rand, static_cast<long long>(a.found_groups), static_cast<long long>(a.reference_groups));
  EXPECT_GE(a.pair_precision, 0.95);
  EXPECT_GE(a.pair_recall, 0.80);
}

// The audit sees the leak of a random 80/20 image split and (almost) none in a split by the
// published groups.
TEST(RealData, AuditFindsTheLeakOfARandomSplitAndNotOfAGroupedOne) {
  const auto root = testing::shared_data("lc25000-dev-96");
  if (root.empty()) GTEST_SKIP() << "../shared/data/lc25000-dev-96 is not here";
  const ScanResult scan = scan_image_folder(root.string());
  const auto csv = read_groups_csv((root / "groups.csv").string());
  const GroupAssignment per_image = assign_groups(scan, nullptr), published = assign_groups(scan, &csv);
  ImageList images;
  for (const auto& image : scan.images) {
    images.paths.push_back(image.path);
    images.classes.push_back(image.class_name);
  }
  const std::vector<int64_t> labels = class_indices(scan, scan.classes);
  const TileSignatures signatures = compute_signatures(images.paths, 0, true);
  const Split random = split_by_group(labels, per_image.group_of_image, 0.2, 1);
  const Split grouped = split_by_group(labels, published.group_of_image, 0.2, 1);
  const AuditReport leaky = audit_split(signatures, labels, images, random.train, random.val, NearCopyOptions{});
  const AuditReport clean = audit_split(signatures, labels, images, grouped.train, grouped.val, NearCopyOptions{});
  std::printf("random split: %.1f%% of validation tiles leaked; grouped split: %.1f%%\n",
              100 * leaky.leaked_fraction(), 100 * clean.leaked_fraction());
  EXPECT_GT(leaky.leaked_fraction(), 0.8);
  EXPECT_LT(clean.leaked_fraction(), 0.02);
}

}  // namespace
}  // namespace histotrain
