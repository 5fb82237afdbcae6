// PNG encoding of RGB and RGBA images (libpng): tiles cut from slides (lossless, so a tile reads
// back as the pixels the slide held) and the pictures histotrain draws itself.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/image.h"

namespace histotrain {

// The PNG file's bytes; `compression` 0-9 (zlib's level).
std::string encode_png(const RgbImage& image, int compression = 3);

// RGBA pixels (width * height * 4), e.g. an overlay with transparency.
std::string encode_png_rgba(const std::vector<uint8_t>& rgba, int width, int height, int compression = 3);

}  // namespace histotrain
