// libFuzzer target: the JPEG path every tile takes on its way into the cache (decode with and
// without DCT-domain scaling, then the antialiased resize). Any input must either decode to a
// consistent image or fail cleanly: no crash, no out-of-bounds access (built with ASan and UBSan),
// no exception. Run with bench/fuzz.sh; crashes it finds become regression tests in
// tests/test_jpeg.cpp.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "data/jpeg.h"
#include "data/resize.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

void decode_and_resize(const uint8_t* data, size_t size, int min_side, int out_side) {
  const histotrain::DecodeResult r = histotrain::decode_jpeg(data, size, min_side);
  if (!r.ok) return;
  const histotrain::RgbImage& image = r.image;
  check(image.width > 0 && image.height > 0);
  check(image.pixels.size() == static_cast<size_t>(image.width) * image.height * 3);
  const histotrain::RgbImage small = histotrain::resize_rgb(image, out_side, out_side);
  check(small.pixels.size() == static_cast<size_t>(out_side) * out_side * 3);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  decode_and_resize(data, size, 0, 17);   // full size, odd target side
  decode_and_resize(data, size, 48, 64);  // DCT-scaled when the image is large enough
  return 0;
}
