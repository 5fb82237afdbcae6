// Near-copy detection: signatures, match scores, grouping and split audits on synthetic tiles.
#include <gtest/gtest.h>

#include <map>

#include "leakage/group_agreement.h"
#include "leakage/group_finder.h"
#include "data/groups.h"
#include "data/jpeg.h"
#include "leakage/near_copies.h"
#include "data/resize.h"
#include "synth/synth.h"
#include "test_util.h"

namespace histotrain {
namespace {

RgbImage mirrored(const RgbImage& src) {
  RgbImage out(src.width, src.height);
  for (int y = 0; y < src.height; ++y)
    for (int x = 0; x < src.width; ++x)
      for (int k = 0; k < 3; ++k) out.row(y)[3 * x + k] = src.row(y)[3 * (src.width - 1 - x) + k];
  return out;
}

RgbImage reencoded(const RgbImage& src, int quality) {
  const auto bytes = encode_jpeg(src, quality);
  DecodeResult d = decode_jpeg(bytes.data(), bytes.size());
  EXPECT_TRUE(d.ok) << d.error;
  return d.image;
}

// Signatures of images of any size, resized to the signature size like decoded files are.
TileSignatures signatures_of(const std::vector<RgbImage>& images) {
  torch::Tensor tiles = torch::empty({static_cast<int64_t>(images.size()), kSignatureTileSize, kSignatureTileSize, 3},
                                     torch::kUInt8);
  for (size_t i = 0; i < images.size(); ++i)
    resize_rgb(images[i], kSignatureTileSize, kSignatureTileSize,
               tiles.data_ptr<uint8_t>() + i * kSignatureTileSize * kSignatureTileSize * 3);
  return signatures_of_tiles(tiles);
}

TEST(NearCopies, RotatedFlippedCroppedAndReencodedCopiesMatchOtherTilesDoNot) {
  const RgbImage source = render_synthetic_tile("lung_aca", 192, 11);
  const std::vector<RgbImage> images = {
      source,
      rotate_and_crop(source, 22),             // rotation with LC25000's zoom
      rotate_and_crop(mirrored(source), -17),  // flip, then rotation
      reencoded(resize_rgb(source, 150, 150), 60),
      render_synthetic_tile("lung_aca", 192, 12),  // other scenes of the same class
      render_synthetic_tile("lung_aca", 192, 13)};
  const TileSignatures s = signatures_of(images);
  const torch::Tensor scores = match_scores(s, {0, 0, 0, 0, 0, 4}, s, {1, 2, 3, 4, 5, 5}, NearCopyOptions{}.max_zoom_rings);
  const double threshold = NearCopyOptions{}.threshold;
  for (int copy = 0; copy < 3; ++copy) EXPECT_GT(scores[copy].item<float>(), threshold) << "copy " << copy + 1;
  for (int other = 3; other < 6; ++other) EXPECT_LT(scores[other].item<float>(), threshold) << "pair " << other;
}

TEST(NearCopies, MatchScoreOfATileWithItselfIsOne) {
  const TileSignatures s = signatures_of({render_synthetic_tile("colon_n", 96, 3)});
  EXPECT_NEAR(match_scores(s, {0}, s, {0}, 3)[0].item<float>(), 1.0, 1e-4);
}

TEST(NearCopies, GroupsSyntheticCopiesAndKeepsScenesApart) {
  testing::ScratchDir dir;
  SynthOptions synth;
  synth.out = (dir / "data").string();
  synth.per_class = 24;
  synth.size = 128;
  synth.copies = 4;
  synth.max_rotation = 25;
  synth.quality = 80;
  synth.quiet = true;
  const SynthReport report = write_synthetic_dataset(synth);
  const ScanResult scan = scan_image_folder(synth.out);
  const FoundGroups found = find_groups(scan, NearCopyOptions{}, 2, true);
  const auto csv = read_groups_csv(report.groups_csv);
  const GroupAgreement a = compare_groupings(found.group_of_image, assign_groups(scan, &csv).group_of_image);
  EXPECT_GE(a.pair_precision, 0.95);  // distinct scenes are not merged
  EXPECT_GE(a.pair_recall, 0.95);     // rotated, flipped, re-encoded copies are
  EXPECT_EQ(found.errors.size(), 0u);
}

TEST(NearCopies, AuditFindsCopiesOfReferenceTilesAndNothingElse) {
  // Scenes of 4 copies; the reference holds the first copy of every even scene, the query all
  // other tiles: copies of even scenes are leaks, tiles of odd scenes are not.
  std::vector<RgbImage> reference, query;
  std::vector<int64_t> reference_labels, query_labels;
  std::vector<bool> should_leak;
  for (int scene = 0; scene < 12; ++scene) {
    const RgbImage source = render_synthetic_tile("lung_scc", 128, 100 + scene);
    for (int copy = 0; copy < 4; ++copy) {
      const RgbImage tile = copy == 0 ? source : rotate_and_crop(copy % 2 ? mirrored(source) : source, 7.0 * copy);
      if (scene % 2 == 0 && copy == 0) {
        reference.push_back(tile);
        reference_labels.push_back(0);
      } else {
        query.push_back(tile);
        query_labels.push_back(0);
        should_leak.push_back(scene % 2 == 0);
      }
    }
  }
  const auto nearest = nearest_copies(signatures_of(query), query_labels, signatures_of(reference), reference_labels,
                                      NearCopyOptions{});
  for (size_t i = 0; i < query.size(); ++i)
    EXPECT_EQ(nearest[i].score >= NearCopyOptions{}.threshold, should_leak[i]) << "query tile " << i;
}

TEST(NearCopies, TilesOfOtherClassesAreNeverComparedAndOneReferenceTileIsEnough) {
  const RgbImage tile = render_synthetic_tile("lung_n", 96, 5);
  const auto other_class = nearest_copies(signatures_of({tile}), {1}, signatures_of({tile}), {0}, NearCopyOptions{});
  EXPECT_EQ(other_class[0].match, -1);
  const auto same_class = nearest_copies(signatures_of({tile}), {0}, signatures_of({tile}), {0}, NearCopyOptions{});
  EXPECT_EQ(same_class[0].match, 0);
  EXPECT_NEAR(same_class[0].score, 1.0, 1e-4);
}

TEST(GroupAgreement, CountsPairsAndAdjustsForChance) {
  const GroupAgreement a = compare_groupings({"a", "a", "b", "b", "c"}, {"x", "x", "x", "y", "y"});
  EXPECT_DOUBLE_EQ(a.pair_precision, 0.5);  // of aa and bb, only aa is together in the reference
  EXPECT_DOUBLE_EQ(a.pair_recall, 0.25);    // of the reference's 4 pairs, 1 is found
  EXPECT_NEAR(a.adjusted_rand, (1 - 0.8) / (3 - 0.8), 1e-12);
  EXPECT_EQ(a.found_groups, 3);
  EXPECT_EQ(a.reference_groups, 2);
  const GroupAgreement same = compare_groupings({"a", "a", "b"}, {"x", "x", "y"});
  EXPECT_DOUBLE_EQ(same.pair_precision, 1);
  EXPECT_DOUBLE_EQ(same.pair_recall, 1);
  EXPECT_DOUBLE_EQ(same.adjusted_rand, 1);
}

}  // namespace
}  // namespace histotrain
