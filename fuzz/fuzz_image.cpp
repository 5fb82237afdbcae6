// libFuzzer target: every tile format's decoder behind decode_image() (PNG, TIFF, BMP, WebP and
// JPEG, chosen by the first bytes), then the antialiased resize, as a tile on its way into the
// cache. Any input must either decode to a consistent image or fail cleanly: no crash, no
// out-of-bounds access (ASan, UBSan), no exception, no allocation past the pixel limit (set low
// here, so that a header claiming a large image is refused rather than allocated). Run with
// bench/fuzz.sh image; crashes it finds become regression tests in tests/test_image_formats.cpp.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "data/decode.h"
#include "data/resize.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  histotrain::set_max_image_pixels(4'000'000);
  const histotrain::DecodeResult r = histotrain::decode_image(data, size, 48);
  if (!r.ok) return 0;
  const histotrain::RgbImage& image = r.image;
  check(image.width > 0 && image.height > 0);
  check(static_cast<uint64_t>(image.width) * image.height <= 4'000'000);
  check(image.pixels.size() == static_cast<size_t>(image.width) * image.height * 3);
  const histotrain::RgbImage small = histotrain::resize_rgb(image, 17, 17);
  check(small.pixels.size() == 17u * 17u * 3u);
  return 0;
}
