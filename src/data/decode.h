// Decoding any tile file into 8-bit RGB: JPEG, PNG, TIFF, BMP and WebP, told apart by their first
// bytes, not by their names. Every format comes out the same way:
//   - 16-bit samples are scaled to 8 bits;
//   - an alpha channel is composited on white (a transparent pixel is slide background, not ink);
//   - grey (and palette) images are expanded to RGB.
// A damaged or unreadable file gives ok = false with the reason; nothing throws. An image whose
// header claims more than max_image_pixels() is refused before its pixels are allocated.
#pragma once
#include <cstdint>
#include <string>

#include "data/image.h"
#include "data/image_format.h"

namespace histotrain {

struct DecodeResult {
  bool ok = false;
  std::string error;  // why not, for the skipped-files report
  RgbImage image;
  int source_width = 0, source_height = 0;  // as stored (a JPEG may decode smaller: min_side)
};

// The most pixels (width x height, as the header claims) an image may have to be decoded, for
// the whole process (like PIL's Image.MAX_IMAGE_PIXELS): --max-image-pixels. Default 100 MP, over
// 150 times an LC25000 tile (768 x 768); a whole-slide image is not a tile.
constexpr uint64_t kDefaultMaxImagePixels = 100'000'000;
void set_max_image_pixels(uint64_t pixels);
uint64_t max_image_pixels();

// The refusal for a header that claims width x height pixels, or "" when they are within the limit.
std::string pixel_limit_error(uint64_t width, uint64_t height);

// Decodes whichever format `data` holds. min_side is a hint for formats that can decode smaller
// for less (JPEG's DCT-domain scaling, data/jpeg.h); the others decode at full size.
DecodeResult decode_image(const uint8_t* data, size_t size, int min_side = 0);
// The same for a file; a file larger than any image within the pixel limit could be is refused
// unread.
DecodeResult decode_image_file(const std::string& path, int min_side = 0);

// Straight (not premultiplied) alpha composited on white, per channel, rounded.
inline uint8_t on_white(unsigned value, unsigned alpha) {
  return static_cast<uint8_t>((value * alpha + 255u * (255u - alpha) + 127u) / 255u);
}

}  // namespace histotrain
