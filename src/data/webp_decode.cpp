// WebP (lossy and lossless) with libwebp: the header's size is checked, then the pixels are
// decoded straight into a buffer of ours.
#include <webp/decode.h>

#include <vector>

#include "data/image_decoders.h"

namespace histotrain {

DecodeResult decode_webp(const uint8_t* data, size_t size) {
  DecodeResult result;
  WebPBitstreamFeatures features;
  if (WebPGetFeatures(data, size, &features) != VP8_STATUS_OK) {
    result.error = "damaged WebP: unreadable header";
    return result;
  }
  if (features.has_animation) {
    result.error = "an animated WebP; histotrain reads still tiles";
    return result;
  }
  result.error = pixel_limit_error(static_cast<uint64_t>(features.width), static_cast<uint64_t>(features.height));
  if (!result.error.empty()) return result;
  const int channels = features.has_alpha ? 4 : 3;
  const size_t stride = static_cast<size_t>(features.width) * channels;
  std::vector<uint8_t> pixels(stride * static_cast<size_t>(features.height));
  const uint8_t* decoded =
      features.has_alpha ? WebPDecodeRGBAInto(data, size, pixels.data(), pixels.size(), static_cast<int>(stride))
                         : WebPDecodeRGBInto(data, size, pixels.data(), pixels.size(), static_cast<int>(stride));
  if (!decoded) {
    result.error = "damaged WebP: the pixels do not decode";
    return result;
  }
  result.image = RgbImage(features.width, features.height);
  rgb_from_interleaved(pixels.data(), channels, result.image);
  result.ok = true;
  return result;
}

}  // namespace histotrain
