#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "data/batches.h"
#include "data/class_balance.h"
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

// 20 synthetic tiles at 32 px.
TileDataset small_dataset() {
  DataOptions options;
  options.root = testing::shared_synthetic_dataset(4, 64).string();
  options.image_size = 32;
  options.quiet = true;
  return load_dataset(options);
}

// 10:1 imbalance: class 0 has 200 items, classes 1..3 20 each. A balanced epoch keeps the epoch's
// length, draws each class a quarter of the time, uses every rare item, and is the same order on
// every rank, so that the ranks' shards split it exactly.
TEST(ClassBalance, BalancedOrderDrawsEveryClassEquallyOftenAndShardsLikeAnyOrder) {
  std::vector<int64_t> labels, items;
  for (int64_t k = 0; k < 4; ++k)
    for (int i = 0; i < (k == 0 ? 200 : 20); ++i) labels.push_back(k);
  for (int64_t i = 0; i < static_cast<int64_t>(labels.size()); i += 1) items.push_back(i);
  const auto order = class_balanced_order(items, labels, 5, 3);
  ASSERT_EQ(order.size(), items.size());
  std::map<int64_t, int> drawn;
  std::set<int64_t> distinct;
  for (const int64_t item : order) {
    ++drawn[labels[item]];
    distinct.insert(item);
  }
  for (int64_t k = 0; k < 4; ++k) EXPECT_NEAR(drawn[k], 65, 1) << "class " << k;
  for (int64_t i = 200; i < 260; ++i) EXPECT_TRUE(distinct.count(i)) << "every rare item is drawn";
  EXPECT_EQ(order, class_balanced_order(items, labels, 5, 3)) << "a resume replays it";
  EXPECT_NE(order, class_balanced_order(items, labels, 5, 4)) << "each epoch its own";
  const auto rank0 = rank_shard(order, 0, 2), rank1 = rank_shard(order, 1, 2);
  for (size_t i = 0; i < rank0.size(); ++i) {
    EXPECT_EQ(rank0[i], order[2 * i]);
    EXPECT_EQ(rank1[i], order[2 * i + 1]);
  }
}

TEST(ClassBalance, InverseFrequencyWeightsAverageOneOverTheImages) {
  const std::vector<int64_t> labels{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 3};
  std::vector<int64_t> items(labels.size());
  for (size_t i = 0; i < items.size(); ++i) items[i] = static_cast<int64_t>(i);
  const auto w = inverse_frequency_weights(items, labels, 4);
  EXPECT_DOUBLE_EQ(w[0], 11.0 / (3 * 8));
  EXPECT_DOUBLE_EQ(w[1], 11.0 / (3 * 2));
  EXPECT_DOUBLE_EQ(w[2], 0.0) << "absent";
  EXPECT_DOUBLE_EQ(w[3], 11.0 / 3);
  double mean = 0;
  for (const int64_t label : labels) mean += w[label] / static_cast<double>(labels.size());
  EXPECT_NEAR(mean, 1.0, 1e-12);
}

TEST(BatchMaker, NormalisesAndAugmentsWithoutChangingContent) {
  const TileDataset data = small_dataset();
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

TEST(BatchMaker, ColorJitterIsAPerChannelGainAndOffset) {
  const TileDataset data = small_dataset();
  const BatchMaker maker(data, torch::kCPU);
  const std::vector<int64_t> items = {0, 5, 19};
  const Batch plain = maker.make(items.data(), 3);
  Augmentation jitter;
  jitter.dihedral = false;
  jitter.color_jitter = 0.2;
  std::mt19937_64 rng(5);
  const Batch jittered = maker.make(items.data(), 3, &jitter, &rng);
  for (int i = 0; i < 3; ++i)
    for (int ch = 0; ch < 3; ++ch) {
      const auto x = plain.images[i][ch].flatten(), y = jittered.images[i][ch].flatten();
      const double gain = ((y - y.mean()) * (x - x.mean())).sum().item<double>() / (x - x.mean()).pow(2).sum().item<double>();
      EXPECT_GE(gain, 0.8 - 1e-4);
      EXPECT_LE(gain, 1.2 + 1e-4);
      EXPECT_LT((y - gain * x).std().item<double>(), 1e-3) << "image " << i << " channel " << ch;
      EXPECT_LE(std::abs((y - gain * x).mean().item<double>()), 0.2 + 1e-4);
    }
  EXPECT_FALSE(torch::equal(plain.images, jittered.images));
}

// The reference the gather must reproduce: reflection-pad, crop at the shift, then flip x, flip y
// and transpose, one image at a time.
torch::Tensor augment_one_by_one(const torch::Tensor& image_chw, int symmetry, int dy, int dx, int shift) {
  const int64_t size = image_chw.size(1);
  auto image = torch::reflection_pad2d(image_chw.unsqueeze(0), {shift, shift, shift, shift})[0];
  image = image.narrow(1, dy + shift, size).narrow(2, dx + shift, size);
  if (symmetry & 1) image = image.flip({2});
  if (symmetry & 2) image = image.flip({1});
  if (symmetry & 4) image = image.transpose(1, 2);
  return image;
}

TEST(BatchMaker, GatherIndexIsEverySymmetryAndShiftOfTheTile) {
  const int64_t size = 9;
  const int shift = 3;
  const auto tiles = torch::randint(0, 256, {4, size, size, 3}, torch::kLong);
  std::vector<int64_t> rows, symmetry, dy, dx;
  for (int s = 0; s < 8; ++s)
    for (int y = -shift; y <= shift; y += 2)
      for (int x = -shift; x <= shift; x += 3) {
        rows.push_back((s + y + 10) % 4);
        symmetry.push_back(s);
        dy.push_back(y);
        dx.push_back(x);
      }
  const auto as_tensor = [](const std::vector<int64_t>& v) { return torch::tensor(v, torch::kLong); };
  const auto index = source_pixel_index(as_tensor(rows), as_tensor(symmetry), as_tensor(dy), as_tensor(dx), size);
  const auto gathered = tiles.view({-1, 3}).index_select(0, index.flatten()).view({-1, size, size, 3});
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto expected = augment_one_by_one(tiles[rows[i]].permute({2, 0, 1}).to(torch::kFloat32),
                                             static_cast<int>(symmetry[i]), static_cast<int>(dy[i]),
                                             static_cast<int>(dx[i]), shift);
    ASSERT_TRUE(torch::equal(gathered[i].permute({2, 0, 1}).to(torch::kFloat32), expected))
        << "symmetry " << symmetry[i] << " shift " << dy[i] << "," << dx[i];
  }
}

}  // namespace
}  // namespace histotrain
