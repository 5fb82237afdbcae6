// One decoder per format, each on Debian's own library for it; data/decode.h chooses among them
// by the file's first bytes and states what they all share (8-bit RGB out, alpha on white, the
// pixel limit checked before allocating). JPEG's is in data/jpeg.h.
#pragma once
#include <cstddef>
#include <cstdint>

#include "data/decode.h"

namespace histotrain {

// libpng: 1-16 bits, grey, grey+alpha, palette (with transparency), RGB, RGBA, Adam7 interlacing.
DecodeResult decode_png(const uint8_t* data, size_t size);
// libtiff: the first page, through its RGBA reader (any bit depth, photometric, strips or tiles,
// and every compression libtiff was built with: LZW, Deflate, JPEG, PackBits, ...). A pyramid (a
// whole-slide image: reduced-resolution pages or SubIFDs) is refused, not decoded at full size.
DecodeResult decode_tiff(const uint8_t* data, size_t size);
// stb_image (Debian's libstb): Windows bitmaps, 1-32 bits per pixel, RLE.
DecodeResult decode_bmp(const uint8_t* data, size_t size);
// libwebp: lossy and lossless, with or without alpha.
DecodeResult decode_webp(const uint8_t* data, size_t size);

// Fills `image` (already sized) from interleaved 8-bit pixels of `channels` (3: RGB, 4: RGBA with
// straight alpha), compositing alpha on white.
void rgb_from_interleaved(const uint8_t* pixels, int channels, RgbImage& image);

}  // namespace histotrain
