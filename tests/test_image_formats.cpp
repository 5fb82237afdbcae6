// Every tile format decodes to the pixels it was made from. The inputs are built here at run time:
// a tile (synthetic, and real LC25000 tiles when ../shared/data is there) is decoded by histotrain,
// written as a plain PPM, and ImageMagick converts that to each format and variant. Lossless
// variants must give back exactly the source's pixels; variants that change the pixels on the way
// (palette, grey, transparency) must match ImageMagick's own decoding of the same file; lossy ones
// stay within a stated bound of the source.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>

#include "data/decode.h"
#include "data/image_format.h"
#include "data/jpeg.h"
#include "data/scan.h"
#include "test_util.h"
#include "util/files.h"

namespace histotrain {
namespace {

using testing::ScratchDir;
namespace fs = std::filesystem;

bool have_imagemagick() { return std::system("convert -version >/dev/null 2>&1") == 0; }

#define REQUIRE_IMAGEMAGICK()                                                                        \
  if (!have_imagemagick()) {                                                                         \
    ASSERT_FALSE(testing::packages_required()) << "no ImageMagick (convert): run.sh installs it";   \
    GTEST_SKIP() << "no ImageMagick (convert)";                                                      \
  }

void convert(const std::string& args) {
  const std::string command = "convert " + args + " 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
}

void write_ppm(const fs::path& path, const RgbImage& image) {
  std::ofstream out(path, std::ios::binary);
  out << "P6\n" << image.width << " " << image.height << "\n255\n";
  out.write(reinterpret_cast<const char*>(image.pixels.data()), static_cast<std::streamsize>(image.pixels.size()));
}

RgbImage read_ppm(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string magic;
  int width = 0, height = 0, max_value = 0;
  in >> magic >> width >> height >> max_value;
  in.get();
  EXPECT_EQ(magic, "P6");
  EXPECT_EQ(max_value, 255);
  RgbImage image(width, height);
  in.read(reinterpret_cast<char*>(image.pixels.data()), static_cast<std::streamsize>(image.pixels.size()));
  return image;
}

// ImageMagick's decoding of a file's first page, composited on white, as 8-bit RGB.
RgbImage imagemagick_pixels(const fs::path& file, const fs::path& scratch) {
  const fs::path out = scratch / (file.filename().string() + ".ref.ppm");
  convert("'" + file.string() + "[0]' -background white -alpha remove -alpha off -depth 8 'PPM:" + out.string() + "'");
  return read_ppm(out);
}

struct Difference {
  int max = 0;
  double mean = 0;
};

Difference difference(const RgbImage& a, const RgbImage& b) {
  Difference d;
  if (a.width != b.width || a.height != b.height) return {256, 256};
  for (size_t i = 0; i < a.pixels.size(); ++i) {
    const int diff = std::abs(a.pixels[i] - b.pixels[i]);
    d.max = std::max(d.max, diff);
    d.mean += diff;
  }
  d.mean /= static_cast<double>(a.pixels.size());
  return d;
}

enum class Expect { source_exactly, imagemagick_within_1, lossy };

struct Variant {
  std::string file;     // its name says the format to ImageMagick
  std::string options;  // ImageMagick options between the source and the output
  Expect expect;
};

// The variants of each format the decoders must read. `-define png:color-type` and the PNG24/48/
// 32/64 prefixes keep ImageMagick from choosing a smaller colour type than the one named.
const std::vector<Variant>& variants() {
  static const std::vector<Variant> all = {
      {"PNG24:rgb.png", "", Expect::source_exactly},
      {"PNG48:rgb16.png", "-depth 16", Expect::source_exactly},
      {"PNG32:rgba.png", "-alpha set", Expect::source_exactly},
      {"PNG64:rgba16.png", "-alpha set -depth 16", Expect::source_exactly},
      {"PNG24:interlaced.png", "-interlace PNG", Expect::source_exactly},
      {"PNG8:palette.png", "-colors 200", Expect::imagemagick_within_1},
      {"PNG8:palette-transparent.png", "-colors 64 -alpha set -channel A -fx 'i<8?0:1' +channel",
       Expect::imagemagick_within_1},
      {"grey.png", "-colorspace Gray -define png:color-type=0 -depth 8", Expect::imagemagick_within_1},
      {"grey16.png", "-colorspace Gray -define png:color-type=0 -depth 16", Expect::imagemagick_within_1},
      {"grey-alpha.png", "-colorspace Gray -alpha set -channel A -evaluate set 50% +channel -define png:color-type=4",
       Expect::imagemagick_within_1},
      {"PNG32:rgba-half.png", "-alpha set -channel A -fx 'i/w' +channel", Expect::imagemagick_within_1},
      {"none.tif", "-compress None", Expect::source_exactly},
      {"lzw.tif", "-compress LZW", Expect::source_exactly},
      {"deflate.tif", "-compress Zip", Expect::source_exactly},
      {"tiled-lzw.tif", "-compress LZW -define tiff:tile-geometry=16x16", Expect::source_exactly},
      {"rgb16-deflate.tif", "-compress Zip -depth 16", Expect::source_exactly},
      {"rgba-lzw.tif", "-alpha set -compress LZW", Expect::source_exactly},
      {"grey.tif", "-colorspace Gray -compress LZW", Expect::imagemagick_within_1},
      {"grey16.tif", "-colorspace Gray -depth 16 -compress None", Expect::imagemagick_within_1},
      {"rgba-half.tif", "-alpha set -channel A -fx 'i/w' +channel -compress LZW", Expect::imagemagick_within_1},
      {"jpeg.tif", "-compress JPEG -quality 90", Expect::lossy},
      {"BMP3:rgb.bmp", "", Expect::source_exactly},
      {"BMP:rgba.bmp", "-alpha set", Expect::source_exactly},
      {"lossless.webp", "-define webp:lossless=true", Expect::source_exactly},
      {"lossless-alpha.webp", "-alpha set -channel A -fx 'i/w' +channel -define webp:lossless=true",
       Expect::imagemagick_within_1},
      {"lossy.webp", "-quality 90", Expect::lossy},
  };
  return all;
}

std::string output_name(const Variant& v) {
  const auto colon = v.file.find(':');
  return colon == std::string::npos ? v.file : v.file.substr(colon + 1);
}

// The stated bound for lossy variants (JPEG-in-TIFF and lossy WebP at quality 90, both with
// chroma subsampling): a mean difference of at most 5 levels per channel from the source. Seen:
// 3.8 for lossy WebP on the 48 px synthetic tile (fine texture), below 3 on real tiles.
constexpr double kLossyMeanBound = 5.0;

// Converts `source` to every variant in `dir` and checks what histotrain decodes from each.
void check_every_variant(const RgbImage& source, const fs::path& dir) {
  const fs::path ppm = dir / "source.ppm";
  write_ppm(ppm, source);
  for (const Variant& v : variants()) {
    SCOPED_TRACE(v.file);
    const fs::path file = dir / output_name(v);
    const std::string prefix = v.file.find(':') == std::string::npos ? "" : v.file.substr(0, v.file.find(':') + 1);
    convert("'" + ppm.string() + "' " + v.options + " '" + prefix + file.string() + "'");
    const DecodeResult decoded = decode_image_file(file.string());
    ASSERT_TRUE(decoded.ok) << decoded.error;
    const RgbImage& image = decoded.image;
    switch (v.expect) {
      case Expect::source_exactly:
        EXPECT_EQ(difference(image, source).max, 0);
        break;
      case Expect::imagemagick_within_1:
        EXPECT_LE(difference(image, imagemagick_pixels(file, dir)).max, 1);
        break;
      case Expect::lossy: {
        const Difference d = difference(image, source);
        EXPECT_LE(d.mean, kLossyMeanBound) << "max " << d.max;
        EXPECT_EQ(image.width, source.width);
        break;
      }
    }
  }
}

RgbImage synthetic_tile() {
  const ScanResult scan = scan_image_folder(testing::shared_synthetic_dataset(1, 48).string());
  const DecodeResult tile = decode_jpeg_file(scan.images.at(0).path);
  EXPECT_TRUE(tile.ok);
  return tile.image;
}

TEST(ImageFormats, EveryVariantOfEveryFormatDecodesToTheSourcePixels) {
  REQUIRE_IMAGEMAGICK();
  ScratchDir dir;
  check_every_variant(synthetic_tile(), dir.path());
}

// Real tiles: a lung tile (224 px) and a colon tile (768 px) of the development set.
TEST(ImageFormats, RealTilesDecodeToTheSourcePixelsInEveryFormat) {
  REQUIRE_IMAGEMAGICK();
  const fs::path data = testing::shared_data("lc25000-dev");
  if (data.empty()) GTEST_SKIP() << "../shared/data/lc25000-dev is not here";
  const ScanResult scan = scan_image_folder(data.string());
  std::vector<std::string> picked;
  for (const std::string cls : {"lung_scc", "colon_aca"})
    for (const auto& image : scan.images)
      if (image.class_name == cls) {
        picked.push_back(image.path);
        break;
      }
  ASSERT_EQ(picked.size(), 2u);
  for (const auto& path : picked) {
    SCOPED_TRACE(path);
    ScratchDir dir;
    const DecodeResult source = decode_jpeg_file(path);
    ASSERT_TRUE(source.ok);
    check_every_variant(source.image, dir.path());
  }
}

// A file cut short, or with bytes overwritten, is refused (or, where the damage misses the pixels,
// decoded) and never crashes; the next good file still decodes.
TEST(ImageFormats, DamagedFilesOfEveryFormatAreRefusedNotCrashed) {
  REQUIRE_IMAGEMAGICK();
  ScratchDir dir;
  const RgbImage source = synthetic_tile();
  write_ppm(dir / "source.ppm", source);
  for (const std::string name : {"PNG24:a.png", "a-interlaced.png", "a.tif", "a-tiled.tif", "BMP3:a.bmp", "a.webp",
                                 "a-lossless.webp", "a.jpeg"}) {
    SCOPED_TRACE(name);
    const std::string plain = name.substr(name.find(':') == std::string::npos ? 0 : name.find(':') + 1);
    const std::string options = plain == "a-interlaced.png" ? "-interlace PNG"
                                : plain == "a-tiled.tif"    ? "-compress LZW -define tiff:tile-geometry=16x16"
                                : plain == "a.tif"          ? "-compress LZW"
                                : plain == "a-lossless.webp" ? "-define webp:lossless=true"
                                                             : "";
    convert("'" + (dir / "source.ppm").string() + "' " + options + " '" +
            (name == plain ? "" : name.substr(0, name.find(':') + 1)) + (dir / plain).string() + "'");
    std::vector<uint8_t> good;
    ASSERT_TRUE(read_file_bytes(dir / plain, good));
    ASSERT_TRUE(decode_image(good.data(), good.size()).ok);
    for (const double share : {0.0, 0.1, 0.5, 0.9}) {
      const size_t cut = static_cast<size_t>(share * static_cast<double>(good.size()));
      EXPECT_FALSE(decode_image(good.data(), cut).ok) << "cut at " << cut << " of " << good.size();
    }
    std::mt19937 rng(static_cast<uint32_t>(testing::test_seed()));
    for (int trial = 0; trial < 40; ++trial) {
      std::vector<uint8_t> bad = good;
      for (int k = 0; k < 8; ++k) bad[rng() % bad.size()] = static_cast<uint8_t>(rng());
      const DecodeResult r = decode_image(bad.data(), bad.size());
      if (r.ok) EXPECT_EQ(r.image.pixels.size(), static_cast<size_t>(r.image.width) * r.image.height * 3);
      else EXPECT_FALSE(r.error.empty());
    }
    EXPECT_TRUE(decode_image(good.data(), good.size()).ok);
  }
}

uint32_t crc32(const uint8_t* data, size_t size) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) {
    crc ^= data[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

void put_be32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}
void put_le(std::vector<uint8_t>& out, uint32_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// A PNG signature and an IHDR chunk claiming side x side RGB pixels, then a few bytes of IDAT.
std::vector<uint8_t> png_claiming(uint32_t side) {
  std::vector<uint8_t> out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  std::vector<uint8_t> ihdr = {'I', 'H', 'D', 'R'};
  put_be32(ihdr, side);
  put_be32(ihdr, side);
  for (const uint8_t b : {8, 2, 0, 0, 0}) ihdr.push_back(b);  // 8 bits, RGB, deflate, no filter, no interlace
  put_be32(out, 13);
  out.insert(out.end(), ihdr.begin(), ihdr.end());
  put_be32(out, crc32(ihdr.data(), ihdr.size()));
  std::vector<uint8_t> idat = {'I', 'D', 'A', 'T', 0x78, 0x9C, 0x03, 0x00};
  put_be32(out, 4);
  out.insert(out.end(), idat.begin(), idat.end());
  put_be32(out, crc32(idat.data(), idat.size()));
  return out;
}

// A little-endian TIFF with one IFD: side x side, 8-bit RGB, one strip of 16 bytes.
std::vector<uint8_t> tiff_claiming(uint32_t side) {
  std::vector<uint8_t> out = {'I', 'I', 42, 0};
  put_le(out, 8, 4);
  const std::vector<std::array<uint32_t, 3>> tags = {
      {256, 4, side}, {257, 4, side}, {258, 3, 8}, {259, 3, 1}, {262, 3, 2},
      {273, 4, 0 /* strip offset, below */}, {277, 3, 3}, {278, 4, side}, {279, 4, 16}};
  const uint32_t data_offset = 8 + 2 + static_cast<uint32_t>(tags.size()) * 12 + 4;
  put_le(out, static_cast<uint32_t>(tags.size()), 2);
  for (const auto& [tag, type, value] : tags) {
    put_le(out, tag, 2);
    put_le(out, type, 2);
    put_le(out, 1, 4);
    put_le(out, tag == 273 ? data_offset : value, 4);  // SHORT values sit in the low bytes
  }
  put_le(out, 0, 4);
  out.resize(out.size() + 16, 0);
  return out;
}

// A Windows bitmap header claiming side x side at 24 bits, with 16 bytes of pixels.
std::vector<uint8_t> bmp_claiming(uint32_t side) {
  std::vector<uint8_t> out = {'B', 'M'};
  put_le(out, 54 + 16, 4);
  put_le(out, 0, 4);
  put_le(out, 54, 4);
  put_le(out, 40, 4);
  put_le(out, side, 4);
  put_le(out, side, 4);
  put_le(out, 1, 2);
  put_le(out, 24, 2);
  for (int i = 0; i < 6; ++i) put_le(out, 0, 4);
  out.resize(out.size() + 16, 0);
  return out;
}

// A lossless WebP (VP8L) header at the format's largest size, 16383 x 16383 (268 MP).
std::vector<uint8_t> webp_claiming_largest() {
  std::vector<uint8_t> out = {'R', 'I', 'F', 'F'};
  put_le(out, 4 + 8 + 16, 4);
  for (const char c : std::string("WEBPVP8L")) out.push_back(static_cast<uint8_t>(c));
  put_le(out, 16, 4);
  out.push_back(0x2F);
  const uint32_t bits = 16382u | (16382u << 14);  // width - 1, height - 1; no alpha, version 0
  put_le(out, bits, 4);
  out.resize(out.size() + 11, 0);
  return out;
}

TEST(ImageFormats, AHeaderClaiming60000x60000IsRefusedBeforeAllocating) {
  struct Bomb {
    std::string name, claimed;
    std::vector<uint8_t> bytes;
  };
  const std::vector<Bomb> bombs = {{"PNG", "60000 x 60000", png_claiming(60000)},
                                   {"TIFF", "60000 x 60000", tiff_claiming(60000)},
                                   {"BMP", "60000 x 60000", bmp_claiming(60000)},
                                   {"WebP", "16383 x 16383", webp_claiming_largest()}};
  for (const Bomb& bomb : bombs) {
    SCOPED_TRACE(bomb.name);
    EXPECT_STREQ(image_format_name(detect_image_format(bomb.bytes.data(), bomb.bytes.size())), bomb.name.c_str());
    const DecodeResult r = decode_image(bomb.bytes.data(), bomb.bytes.size());
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.error.find(bomb.claimed), std::string::npos) << r.error;
    EXPECT_NE(r.error.find("--max-image-pixels"), std::string::npos) << r.error;
  }
  // The limit is the one given: 2000 x 2000 is refused just below it, and just at it gets as far
  // as its missing pixels (16 MB allocated, then a damaged strip).
  const uint64_t limit = max_image_pixels();
  const auto tiff = tiff_claiming(2000);
  set_max_image_pixels(2000 * 2000 - 1);
  EXPECT_NE(decode_image(tiff.data(), tiff.size()).error.find("--max-image-pixels"), std::string::npos);
  set_max_image_pixels(2000 * 2000);
  const DecodeResult at_limit = decode_image(tiff.data(), tiff.size());
  EXPECT_FALSE(at_limit.ok);
  EXPECT_EQ(at_limit.error.find("--max-image-pixels"), std::string::npos) << at_limit.error;
  set_max_image_pixels(limit);
}

TEST(ImageFormats, APyramidTiffIsRefusedAndAMultiPageTiffGivesItsFirstPage) {
  REQUIRE_IMAGEMAGICK();
  ScratchDir dir;
  const RgbImage source = synthetic_tile();
  write_ppm(dir / "a.ppm", source);
  // ImageMagick halves a pyramid's pages down to about 32 px: a larger tile makes several.
  convert("'" + (dir / "a.ppm").string() + "' -resize 256x256 'PTIF:" + (dir / "pyramid.tif").string() + "'");
  const DecodeResult pyramid = decode_image_file((dir / "pyramid.tif").string());
  EXPECT_FALSE(pyramid.ok);
  EXPECT_NE(pyramid.error.find("pyramid"), std::string::npos) << pyramid.error;

  convert("'" + (dir / "a.ppm").string() + "' -negate '" + (dir / "b.ppm").string() + "'");
  convert("'" + (dir / "a.ppm").string() + "' '" + (dir / "b.ppm").string() + "' -compress LZW '" +
          (dir / "pages.tif").string() + "'");
  const DecodeResult pages = decode_image_file((dir / "pages.tif").string());
  ASSERT_TRUE(pages.ok) << pages.error;
  EXPECT_EQ(difference(pages.image, source).max, 0);
}

// The format is the content's, not the name's: a PNG named .jpeg decodes, a tile without an
// extension is found by the scan, a text file is ignored, and a damaged .png is listed (to be
// counted as damaged when decoded) rather than ignored.
// A bitmap stored top row first (negative height in its header) is a valid tile, not a bomb, and
// decodes the right way up.
TEST(ImageFormats, ATopDownBitmapDecodesTheRightWayUp) {
  const auto le32 = [](int32_t v) {
    std::string s(4, '\0');
    std::memcpy(s.data(), &v, 4);
    return s;
  };
  std::string bmp = "BM" + le32(70) + le32(0) + le32(54) + le32(40) + le32(2) + le32(-2) + std::string("\x01\0\x18\0", 4) +
                    le32(0) + le32(16) + le32(2835) + le32(2835) + le32(0) + le32(0);
  bmp += std::string("\0\0\xff\0\xff\0\0\0", 8);    // top row: red, green (stored as BGR), 2 bytes of padding
  bmp += std::string("\xff\0\0\xff\xff\xff\0\0", 8);  // bottom row: blue, white
  const DecodeResult r = decode_image(reinterpret_cast<const uint8_t*>(bmp.data()), bmp.size(), 0);
  ASSERT_TRUE(r.ok) << r.error;
  ASSERT_EQ(r.image.width, 2);
  ASSERT_EQ(r.image.height, 2);
  const std::vector<uint8_t> expected = {255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255};
  EXPECT_EQ(r.image.pixels, expected);
}

TEST(ImageFormats, TheContentDecidesTheFormatNotTheName) {
  REQUIRE_IMAGEMAGICK();
  ScratchDir dir;
  write_ppm(dir / "a.ppm", synthetic_tile());
  fs::create_directories(dir / "data/lung_n");
  convert("'" + (dir / "a.ppm").string() + "' 'PNG24:" + (dir / "data/lung_n/named-wrong.jpeg").string() + "'");
  convert("'" + (dir / "a.ppm").string() + "' 'TIFF:" + (dir / "data/lung_n/no-extension").string() + "'");
  std::ofstream(dir / "data/lung_n/notes.txt") << "scanned at 40x\n";
  std::ofstream(dir / "data/lung_n/damaged.png") << "not really a PNG";
  const ScanResult scan = scan_image_folder((dir / "data").string());
  ASSERT_EQ(scan.images.size(), 3u);
  EXPECT_EQ(scan.ignored_files, 1);
  const DecodeResult named_wrong = decode_image_file((dir / "data/lung_n/named-wrong.jpeg").string());
  EXPECT_TRUE(named_wrong.ok) << named_wrong.error;
  EXPECT_EQ(detect_image_file_format((dir / "data/lung_n/no-extension").string()), ImageFormat::tiff);
  EXPECT_TRUE(decode_image_file((dir / "data/lung_n/no-extension").string()).ok);
  const DecodeResult damaged = decode_image_file((dir / "data/lung_n/damaged.png").string());
  EXPECT_FALSE(damaged.ok);
  EXPECT_NE(damaged.error.find("not an image"), std::string::npos) << damaged.error;
}

}  // namespace
}  // namespace histotrain
