#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "data/batches.h"
#include "data/dataset.h"
#include "test_util.h"

namespace histotrain {
namespace {

TEST(EpochOrder, ShuffledPerEpochDeterministicAndShardedEvenly) {
  std::vector<int64_t> items(103);
  for (int64_t i = 0; i < 103; ++i) items[i] = i;
  EXPECT_EQ(epoch_order(items, 1, 0, true), epoch_order(items, 1, 0, true));
  EXPECT_NE(epoch_order(items, 1, 0, true), epoch_order(items, 1, 1, true));
  EXPECT_EQ(epoch_order(items, 1, 0, false), items);
  std::set<int64_t> seen;
  for (int rank = 0; rank < 4; ++rank) {
    const auto shard = epoch_order(items, 1, 2, true, rank, 4);
    EXPECT_EQ(shard.size(), 25u);  // 103 / 4, the same on every rank
    for (int64_t i : shard) EXPECT_TRUE(seen.insert(i).second) << i << " on two ranks";
  }
}

TEST(BatchMaker, NormalisesAndAugmentsWithoutChangingContent) {
  const auto root = testing::shared_synthetic_dataset(4, 64);
  DataOptions options;
  options.root = root.string();
  options.image_size = 32;
  options.quiet = true;
  const TileDataset data = load_dataset(options);
  const BatchMaker maker(data, torch::kCPU);
  const std::vector<int64_t> items = {0, 5, 19};
  const Batch plain = maker.make(items.data(), 3);
  ASSERT_EQ(plain.images.sizes(), (std::vector<int64_t>{3, 3, 32, 32}));
  EXPECT_EQ(plain.labels[1].item<int64_t>(), data.labels[5]);
  // Normalisation: pixel (0,0,0) of item 0, red channel.
  const double red = data.tiles()[data.rows[0]][0][0][0].item<uint8_t>();
  EXPECT_NEAR(plain.images[0][0][0][0].item<float>(), (red / 255 - 0.485) / 0.229, 1e-4);

  Augmentation flips_only;
  std::mt19937_64 rng(3);
  const Batch augmented = maker.make(items.data(), 3, &flips_only, &rng);
  for (int i = 0; i < 3; ++i) {  // a flip or rotation moves pixels, never changes them
    auto a = std::get<0>(plain.images[i].flatten().sort());
    auto b = std::get<0>(augmented.images[i].flatten().sort());
    EXPECT_TRUE(torch::allclose(a, b));
  }
  bool any_moved = false;
  for (int i = 0; i < 3; ++i) any_moved |= !torch::equal(plain.images[i], augmented.images[i]);
  EXPECT_TRUE(any_moved);

  Augmentation none;
  none.dihedral = false;
  EXPECT_TRUE(torch::equal(maker.make(items.data(), 3, &none, &rng).images, plain.images)) << "identity is exact";

  // A shift moves the tile by whole pixels: the overlap is the same pixels, shifted.
  Augmentation shifted;
  shifted.dihedral = false;
  shifted.max_shift = 4;
  const Batch moved = maker.make(items.data(), 3, &shifted, &rng);
  ASSERT_EQ(moved.images.sizes(), plain.images.sizes());
  for (int i = 0; i < 3; ++i) {
    bool found = false;
    for (int dy = -4; dy <= 4 && !found; ++dy)
      for (int dx = -4; dx <= 4 && !found; ++dx) {
        // output(y, x) = input(y + dy, x + dx) on the overlap
        const auto out = moved.images[i].narrow(1, std::max(0, -dy), 32 - std::abs(dy)).narrow(2, std::max(0, -dx), 32 - std::abs(dx));
        const auto in = plain.images[i].narrow(1, std::max(0, dy), 32 - std::abs(dy)).narrow(2, std::max(0, dx), 32 - std::abs(dx));
        found = torch::equal(out, in);
      }
    EXPECT_TRUE(found) << "image " << i << " is not a whole-pixel shift of the original";
  }
}

}  // namespace
}  // namespace histotrain
