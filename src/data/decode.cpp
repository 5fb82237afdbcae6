#include "data/decode.h"

#include <algorithm>
#include <atomic>

#include "data/image_decoders.h"
#include "data/jpeg.h"
#include "util/errors.h"
#include "util/files.h"

namespace histotrain {

namespace {

std::atomic<uint64_t> g_max_image_pixels{kDefaultMaxImagePixels};

// No image within the pixel limit needs more bytes than 8 per pixel (16-bit RGBA, uncompressed)
// and its metadata: a larger file is refused before it is read into memory.
uint64_t max_image_file_bytes() { return max_image_pixels() * 8 + (uint64_t{1} << 20); }

}  // namespace

// Capped at 2^40 so that no size computed from a permitted image overflows.
void set_max_image_pixels(uint64_t pixels) { g_max_image_pixels = std::min<uint64_t>(pixels, uint64_t{1} << 40); }
uint64_t max_image_pixels() { return g_max_image_pixels; }

std::string pixel_limit_error(uint64_t width, uint64_t height) {
  if (width == 0 || height == 0) return "its header claims an empty image (" + std::to_string(width) + " x " +
                                        std::to_string(height) + " pixels)";
  // Either side alone over the limit would overflow the product on a hostile header; a side must
  // also fit the int of RgbImage.
  constexpr uint64_t kMaxSide = 0x7fffffff;
  if (width <= kMaxSide && height <= kMaxSide && width * height <= max_image_pixels()) return "";
  return "its header claims " + std::to_string(width) + " x " + std::to_string(height) +
         " pixels, more than --max-image-pixels " + std::to_string(max_image_pixels()) +
         " (a decompression bomb, or not a tile)";
}

namespace {

DecodeResult decode_by_format(const uint8_t* data, size_t size, int min_side) {
  switch (detect_image_format(data, size)) {
    case ImageFormat::jpeg: return decode_jpeg(data, size, min_side);
    case ImageFormat::png: return decode_png(data, size);
    case ImageFormat::tiff: return decode_tiff(data, size);
    case ImageFormat::bmp: return decode_bmp(data, size);
    case ImageFormat::webp: return decode_webp(data, size);
    case ImageFormat::unknown: break;
  }
  DecodeResult result;
  result.error = "not an image histotrain reads (JPEG, PNG, TIFF, BMP or WebP, told by its first bytes)";
  return result;
}

}  // namespace

DecodeResult decode_image(const uint8_t* data, size_t size, int min_side) {
  DecodeResult result = decode_by_format(data, size, min_side);
  if (result.ok && result.source_width == 0) result.source_width = result.image.width, result.source_height = result.image.height;
  return result;
}

DecodeResult decode_image_file(const std::string& path, int min_side) {
  std::string bytes;
  try {
    bytes = read_regular_file(path, max_image_file_bytes());
  } catch (const Error& e) {
    DecodeResult result;
    result.error = e.what();
    return result;
  }
  return decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), min_side);
}

void rgb_from_interleaved(const uint8_t* pixels, int channels, RgbImage& image) {
  const size_t count = static_cast<size_t>(image.width) * image.height;
  uint8_t* out = image.pixels.data();
  if (channels == 3) {
    std::copy(pixels, pixels + count * 3, out);
    return;
  }
  for (size_t i = 0; i < count; ++i, pixels += channels, out += 3) {
    const unsigned alpha = pixels[3];
    for (int c = 0; c < 3; ++c) out[c] = on_white(pixels[c], alpha);
  }
}

}  // namespace histotrain
