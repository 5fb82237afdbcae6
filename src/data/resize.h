// Resampling of RGB images: separable triangle (bilinear) filter whose support widens with the
// downscale factor, i.e. antialiased like PIL's BILINEAR, which torchvision's Resize uses.
#pragma once
#include <cstdint>

#include "data/image.h"

namespace histotrain {

// Resizes `src` to out_w x out_h into `dst` (out_w * out_h * 3 bytes).
void resize_rgb(const RgbImage& src, int out_w, int out_h, uint8_t* dst);
RgbImage resize_rgb(const RgbImage& src, int out_w, int out_h);

}  // namespace histotrain
