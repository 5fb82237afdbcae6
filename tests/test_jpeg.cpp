#include <gtest/gtest.h>
#include <turbojpeg.h>

#include <cmath>

#include "data/jpeg.h"
#include "data/resize.h"

namespace histotrain {
namespace {

RgbImage gradient(int w, int h) {
  RgbImage image(w, h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      image.row(y)[3 * x] = static_cast<uint8_t>(x * 255 / w);
      image.row(y)[3 * x + 1] = static_cast<uint8_t>(y * 255 / h);
      image.row(y)[3 * x + 2] = 128;
    }
  return image;
}

double mean_abs_diff(const RgbImage& a, const RgbImage& b) {
  double sum = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) sum += std::abs(a.pixels[i] - b.pixels[i]);
  return sum / a.pixels.size();
}

TEST(Jpeg, RoundTripIsClose) {
  const RgbImage image = gradient(64, 48);
  const DecodeResult decoded = decode_jpeg(encode_jpeg(image, 95).data(), encode_jpeg(image, 95).size());
  ASSERT_TRUE(decoded.ok) << decoded.error;
  EXPECT_EQ(decoded.image.width, 64);
  EXPECT_EQ(decoded.image.height, 48);
  EXPECT_LT(mean_abs_diff(decoded.image, image), 3.0);
}

TEST(Jpeg, DctScalingPicksTheSmallestScaleStillAtLeastTheTarget) {
  const auto bytes = encode_jpeg(gradient(768, 768));
  EXPECT_EQ(decode_jpeg(bytes.data(), bytes.size(), 96).image.width, 96);    // 1/8
  EXPECT_EQ(decode_jpeg(bytes.data(), bytes.size(), 200).image.width, 288);  // 3/8; 1/4 would be 192 < 200
  EXPECT_EQ(decode_jpeg(bytes.data(), bytes.size(), 500).image.width, 768);  // less than twice: full size
  EXPECT_EQ(decode_jpeg(bytes.data(), bytes.size(), 0).image.width, 768);
}

TEST(Jpeg, GreyscaleComesOutAsRgb) {
  const auto bytes = encode_jpeg(gradient(32, 32), 90, JpegSubsampling::gray);
  const DecodeResult decoded = decode_jpeg(bytes.data(), bytes.size());
  ASSERT_TRUE(decoded.ok) << decoded.error;
  ASSERT_EQ(decoded.image.pixels.size(), 32u * 32 * 3);
  for (size_t i = 0; i < decoded.image.pixels.size(); i += 3) {
    EXPECT_EQ(decoded.image.pixels[i], decoded.image.pixels[i + 1]);
    EXPECT_EQ(decoded.image.pixels[i], decoded.image.pixels[i + 2]);
  }
}

TEST(Jpeg, CmykComesOutAsRgb) {
  // Inverted (Adobe) CMYK of a uniform orange: C=0 M=50% Y=100% K=0 -> RGB ~ (255, 128, 0).
  std::vector<uint8_t> cmyk(16 * 16 * 4);
  for (size_t i = 0; i < cmyk.size(); i += 4) {
    cmyk[i] = 255;
    cmyk[i + 1] = 127;
    cmyk[i + 2] = 0;
    cmyk[i + 3] = 255;
  }
  tjhandle h = tjInitCompress();
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  ASSERT_EQ(tjCompress2(h, cmyk.data(), 16, 0, 16, TJPF_CMYK, &buffer, &size, TJSAMP_444, 95, 0), 0);
  const DecodeResult decoded = decode_jpeg(buffer, size);
  tjFree(buffer);
  tjDestroy(h);
  ASSERT_TRUE(decoded.ok) << decoded.error;
  EXPECT_NEAR(decoded.image.pixels[0], 255, 4);
  EXPECT_NEAR(decoded.image.pixels[1], 127, 4);
  EXPECT_NEAR(decoded.image.pixels[2], 0, 4);
}

TEST(Jpeg, TruncatedAndGarbageDataFailWithoutThrowing) {
  auto bytes = encode_jpeg(gradient(128, 128));
  bytes.resize(bytes.size() / 2);
  const DecodeResult truncated = decode_jpeg(bytes.data(), bytes.size());
  EXPECT_FALSE(truncated.ok);
  EXPECT_FALSE(truncated.error.empty());
  const std::vector<uint8_t> garbage(1000, 0x42);
  EXPECT_FALSE(decode_jpeg(garbage.data(), garbage.size()).ok);
  EXPECT_FALSE(decode_jpeg(garbage.data(), 0).ok);
  EXPECT_FALSE(decode_jpeg_file("/nonexistent/x.jpeg").ok);
}

// A bad file must not spoil the decoder for the next, good one on the same thread.
TEST(Jpeg, AGoodFileDecodesAfterABadOne) {
  const auto good = encode_jpeg(gradient(128, 128));
  for (size_t cut : {size_t{100}, size_t{300}, size_t{500}, good.size() / 2}) {
    const std::vector<uint8_t> bad(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(cut));
    EXPECT_FALSE(decode_jpeg(bad.data(), bad.size()).ok) << "cut at " << cut;
    const DecodeResult next = decode_jpeg(good.data(), good.size());
    EXPECT_TRUE(next.ok) << "after a file cut at " << cut << ": " << next.error;
  }
}

TEST(Resize, ConstantStaysConstantAndShapesAreRight) {
  RgbImage flat(100, 60);
  std::fill(flat.pixels.begin(), flat.pixels.end(), 77);
  for (auto [w, h] : {std::pair{32, 32}, std::pair{250, 90}, std::pair{100, 60}}) {
    const RgbImage out = resize_rgb(flat, w, h);
    ASSERT_EQ(out.pixels.size(), static_cast<size_t>(w) * h * 3);
    for (uint8_t v : out.pixels) ASSERT_EQ(v, 77);
  }
}

TEST(Resize, DownscalingAveragesAFineCheckerboard) {
  RgbImage checker(64, 64);
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 64; ++x)
      for (int c = 0; c < 3; ++c) checker.row(y)[3 * x + c] = ((x + y) & 1) ? 255 : 0;
  const RgbImage out = resize_rgb(checker, 8, 8);
  for (uint8_t v : out.pixels) EXPECT_NEAR(v, 128, 6);  // antialiased, no moire
}

}  // namespace
}  // namespace histotrain
