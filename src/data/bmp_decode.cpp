// Windows bitmaps with stb_image, as Debian ships it (libstb). Only BMP comes here: the format is
// chosen by its first bytes, and stb's other decoders are not used.
#include <stb_image.h>

#include <climits>
#include <cstdlib>

#include "data/image_decoders.h"

namespace histotrain {

namespace {

uint32_t little_endian(const uint8_t* p, int bytes) {
  uint32_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// stb_image reads past the end of a bitmap as zeros: a file cut short would decode to a partly
// black tile. For uncompressed bitmaps the header says how many bytes the pixels take, so a
// short file is known before decoding. (RLE bitmaps carry no such size; stb stops on their end.)
bool shorter_than_its_pixels(const uint8_t* data, size_t size) {
  if (size < 30) return true;
  const uint64_t pixels_at = little_endian(data + 10, 4);
  const uint32_t header_size = little_endian(data + 14, 4);
  uint64_t width = 0, height = 0, bits = 0, compression = 0;
  if (header_size == 12) {  // OS/2 BITMAPCOREHEADER
    width = little_endian(data + 18, 2);
    height = little_endian(data + 20, 2);
    bits = little_endian(data + 24, 2);
  } else {
    if (size < 34) return true;
    width = static_cast<uint64_t>(std::abs(static_cast<int64_t>(static_cast<int32_t>(little_endian(data + 18, 4)))));
    height = static_cast<uint64_t>(std::abs(static_cast<int64_t>(static_cast<int32_t>(little_endian(data + 22, 4)))));
    bits = little_endian(data + 28, 2);
    compression = little_endian(data + 30, 4);
  }
  const bool uncompressed = compression == 0 || compression == 3 || compression == 6;  // RGB, (alpha) bitfields
  if (!uncompressed) return false;
  const uint64_t stride = (width * bits + 31) / 32 * 4;
  return pixels_at + stride * height > size;
}

}  // namespace

DecodeResult decode_bmp(const uint8_t* data, size_t size) {
  DecodeResult result;
  if (size > static_cast<size_t>(INT_MAX)) {
    result.error = "a BMP larger than 2 GB";
    return result;
  }
  const int length = static_cast<int>(size);
  int width = 0, height = 0, channels = 0;
  if (!stbi_info_from_memory(data, length, &width, &height, &channels)) {
    result.error = std::string("damaged BMP: ") + stbi_failure_reason();
    return result;
  }
  // A top-down bitmap stores a negative height, and stb_image's info reports it as it is stored.
  const auto side = [](int v) { return static_cast<uint64_t>(std::abs(static_cast<int64_t>(v))); };
  result.error = pixel_limit_error(side(width), side(height));
  if (!result.error.empty()) return result;
  if (shorter_than_its_pixels(data, size)) {
    result.error = "damaged BMP: the file ends before its pixels do (truncated)";
    return result;
  }
  stbi_uc* rgba = stbi_load_from_memory(data, length, &width, &height, &channels, 4);
  if (!rgba) {
    result.error = std::string("damaged BMP: ") + stbi_failure_reason();
    return result;
  }
  result.image = RgbImage(width, height);
  rgb_from_interleaved(rgba, 4, result.image);
  stbi_image_free(rgba);
  result.ok = true;
  return result;
}

}  // namespace histotrain
