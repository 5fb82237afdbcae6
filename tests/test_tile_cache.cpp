#include <gtest/gtest.h>

#include <fstream>

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

  const auto written = std::filesystem::last_write_time(dir / "data/a/1.jpeg");
  write_tile(dir / "data/a/1.jpeg", 120, 40);  // same path, new content, and a later time whatever the clock's grain
  std::filesystem::last_write_time(dir / "data/a/1.jpeg", written + std::chrono::seconds(1));
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

// Two tiles in dir/data (values 30 and `second`), cached at 16 px and closed again.
struct TwoTileCache {
  ScanResult scan;
  std::string path;  // the cache file
};
TwoTileCache build_two_tile_cache(const ScratchDir& dir, uint8_t second = 30) {
  write_tile(dir / "data/a/1.jpeg", 30);
  write_tile(dir / "data/b/1.jpeg", second);
  TwoTileCache built{scan_image_folder((dir / "data").string()), ""};
  built.path = TileCache::open_or_build(built.scan, options_for(dir, 16))->path();
  return built;
}

TEST(TileCache, HalfWrittenCacheFileIsNeverTrusted) {
  ScratchDir dir;
  const auto [scan, path] = build_two_tile_cache(dir);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 100);  // torn write
  EXPECT_FALSE(TileCache::open_or_build(scan, options_for(dir, 16))->reused());
}

// A byte changed anywhere after the header (bit rot, a bad copy) fails the checksum; so does a
// foreign file of the right size. Both are rebuilt, never trained on.
TEST(TileCache, DamagedOrForeignCacheIsDetectedByItsChecksumAndRebuilt) {
  ScratchDir dir;
  const auto [scan, path] = build_two_tile_cache(dir, 200);
  const auto size = std::filesystem::file_size(path);
  for (const std::uintmax_t offset : {std::uintmax_t{45}, size - 1}) {  // a status byte, the last tile byte
    {
      std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
      file.seekp(static_cast<std::streamoff>(offset));
      file.put('\x7f');
    }
    const auto rebuilt = TileCache::open_or_build(scan, options_for(dir, 16));
    EXPECT_FALSE(rebuilt->reused()) << "damaged at byte " << offset;
    EXPECT_NEAR(rebuilt->tile(1)[size_t{16 * 16 * 3 - 1}], 200, 3);
  }
  testing::write_bytes(path, std::vector<uint8_t>(size, 0x48));  // same size, other bytes
  EXPECT_FALSE(TileCache::open_or_build(scan, options_for(dir, 16))->reused());
  EXPECT_TRUE(TileCache::open_or_build(scan, options_for(dir, 16))->reused()) << "the rebuilt cache is trusted";
}

// A build killed half-way leaves NAME.building<pid>; the next build removes it.
TEST(TileCache, WhatAKilledBuildLeftBehindIsRemoved) {
  ScratchDir dir;
  const auto [scan, path] = build_two_tile_cache(dir);
  const std::string abandoned = path + ".building999999999";  // no such process
  testing::write_bytes(abandoned, std::vector<uint8_t>(100, 1));
  std::filesystem::remove(path);
  EXPECT_FALSE(TileCache::open_or_build(scan, options_for(dir, 16))->reused());
  EXPECT_FALSE(std::filesystem::exists(abandoned));
}

}  // namespace
}  // namespace histotrain
