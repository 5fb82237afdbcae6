#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "data/dataset.h"
#include "data/jpeg.h"
#include "data/tile_cache.h"
#include "test_util.h"

namespace histotrain {
namespace {

using testing::ScratchDir;

void write_tile(const std::filesystem::path& path, uint8_t value, int size = 48) {
  RgbImage image(size, size);
  std::fill(image.pixels.begin(), image.pixels.end(), value);
  testing::write_bytes(path, encode_jpeg(image, 95));
}

TileCacheOptions options_for(const ScratchDir& dir, int size) {
  TileCacheOptions o;
  o.size = size;
  o.cache_dir = (dir / "cache").string();
  o.threads = 2;
  o.quiet = true;
  return o;
}

TEST(TileCache, BuildsThenReusesThenRebuildsWhenFilesOrSizeChange) {
  ScratchDir dir;
  write_tile(dir / "data/a/1.jpeg", 50);
  write_tile(dir / "data/b/2.jpeg", 200);
  auto scan = scan_image_folder((dir / "data").string());

  auto first = TileCache::open_or_build(scan, options_for(dir, 16));
  EXPECT_FALSE(first->reused());
  ASSERT_EQ(first->count(), 2);
  EXPECT_NEAR(first->tile(0)[0], 50, 3);
  EXPECT_NEAR(first->tile(1)[16 * 16 * 3 - 1], 200, 3);

  EXPECT_TRUE(TileCache::open_or_build(scan, options_for(dir, 16))->reused());
  EXPECT_FALSE(TileCache::open_or_build(scan, options_for(dir, 24))->reused()) << "new size, new cache";

  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  write_tile(dir / "data/a/1.jpeg", 120, 40);  // same path, new content
  scan = scan_image_folder((dir / "data").string());
  auto rebuilt = TileCache::open_or_build(scan, options_for(dir, 16));
  EXPECT_FALSE(rebuilt->reused());
  EXPECT_NEAR(rebuilt->tile(0)[0], 120, 3);
}

TEST(TileCache, CorruptImagesAreCountedAndDatasetLeavesThemOut) {
  ScratchDir dir;
  write_tile(dir / "data/a/good.jpeg", 90);
  write_tile(dir / "data/b/good.jpeg", 90);
  testing::write_bytes(dir / "data/a/broken.jpeg", {0xFF, 0xD8, 0xFF, 0xE0, 0x00});
  DataOptions options;
  options.root = (dir / "data").string();
  options.image_size = 16;
  options.cache_dir = (dir / "cache").string();
  options.quiet = true;
  const TileDataset data = load_dataset(options);
  EXPECT_EQ(data.cache->failed(), 1);
  EXPECT_EQ(data.size(), 2);
  ASSERT_EQ(data.cache->errors().size(), 1u);
  EXPECT_NE(data.cache->errors()[0].find("broken.jpeg"), std::string::npos);
  EXPECT_NE(describe(data).find("skipped 1 image"), std::string::npos);
  // The reused cache still knows which image failed.
  EXPECT_EQ(load_dataset(options).size(), 2);
}

TEST(TileCache, HalfWrittenCacheFileIsNeverTrusted) {
  ScratchDir dir;
  write_tile(dir / "data/a/1.jpeg", 30);
  write_tile(dir / "data/b/1.jpeg", 30);
  const auto scan = scan_image_folder((dir / "data").string());
  auto cache = TileCache::open_or_build(scan, options_for(dir, 16));
  const std::string path = cache->path();
  cache.reset();
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 100);  // torn write
  EXPECT_FALSE(TileCache::open_or_build(scan, options_for(dir, 16))->reused());
}

}  // namespace
}  // namespace histotrain
