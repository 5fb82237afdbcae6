// JPEG decoding and encoding with libjpeg-turbo (TurboJPEG API).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/image.h"

namespace histotrain {

struct DecodeResult {
  bool ok = false;
  std::string error;  // why not, for the skipped-files report
  RgbImage image;
};

// Decodes to RGB. Grey-scale, YCbCr and CMYK/YCCK JPEGs all come out as RGB. When the image is at
// least twice `min_side` on both sides, libjpeg-turbo's DCT-domain scaling (n/8: 1/2, 3/8, 1/4, 1/8, ...)
// decodes it smaller, to the smallest scale still >= min_side: a 768 px tile bound for 96 px
// decodes at 1/8 for a fraction of the cost. min_side <= 0 decodes at full size.
// Truncated and corrupt data give ok = false; nothing throws. So does an image whose header
// claims more than max_image_pixels(): a few hundred bytes may claim 60000 x 60000 pixels, and
// that is refused before anything is allocated.
DecodeResult decode_jpeg(const uint8_t* data, size_t size, int min_side = 0);
DecodeResult decode_jpeg_file(const std::string& path, int min_side = 0);

// The most pixels (width x height, as the header claims) an image may have to be decoded, for
// the whole process (like PIL's Image.MAX_IMAGE_PIXELS): --max-image-pixels. Default 100 MP, over
// 150 times an LC25000 tile (768 x 768); a whole-slide image is not a tile.
constexpr uint64_t kDefaultMaxImagePixels = 100'000'000;
void set_max_image_pixels(uint64_t pixels);
uint64_t max_image_pixels();

enum class JpegSubsampling { s444, s420, gray };

// Encodes RGB; throws Error on failure.
std::vector<uint8_t> encode_jpeg(const RgbImage& image, int quality = 90,
                                 JpegSubsampling subsampling = JpegSubsampling::s420);

}  // namespace histotrain
