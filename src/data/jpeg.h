// JPEG decoding and encoding with libjpeg-turbo (TurboJPEG API).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/decode.h"

namespace histotrain {

// Decodes to RGB. Grey-scale, YCbCr and CMYK/YCCK JPEGs all come out as RGB. When the image is at
// least twice `min_side` on both sides, libjpeg-turbo's DCT-domain scaling (n/8: 1/2, 3/8, 1/4, 1/8, ...)
// decodes it smaller, to the smallest scale still >= min_side: a 768 px tile bound for 96 px
// decodes at 1/8 for a fraction of the cost. min_side <= 0 decodes at full size.
// Truncated and corrupt data give ok = false; nothing throws. So does an image whose header
// claims more than max_image_pixels() (data/decode.h): a few hundred bytes may claim 60000 x 60000
// pixels, and that is refused before anything is allocated.
DecodeResult decode_jpeg(const uint8_t* data, size_t size, int min_side = 0);
DecodeResult decode_jpeg_file(const std::string& path, int min_side = 0);

enum class JpegSubsampling { s444, s420, gray };

// Encodes RGB; throws Error on failure.
std::vector<uint8_t> encode_jpeg(const RgbImage& image, int quality = 90,
                                 JpegSubsampling subsampling = JpegSubsampling::s420);

}  // namespace histotrain
