// Pyramidal tiled TIFF: the layout OpenSlide reads as a "generic tiled TIFF" (each directory one
// level, every level tiled), with the resolution tags that give its microns per pixel. Written by
// `histotrain synth --slide` for tests and demos: no slide is downloaded or committed.
#pragma once
#include <string>
#include <vector>

#include "data/image.h"

namespace histotrain {

// Levels of `level0`, each half the one before (2 x 2 pixels averaged), down to the first whose
// longer side is at most `smallest_side`.
std::vector<RgbImage> pyramid_levels(const RgbImage& level0, int smallest_side = 512);

// Writes `levels` to `path` as a tiled TIFF (tiles of `tile` pixels, Deflate: lossless, so what
// is read back is what was written), the resolution tags at `mpp` microns per level-0 pixel.
// Written beside `path` and renamed into place.
void write_pyramid_tiff(const std::vector<RgbImage>& levels, const std::string& path, double mpp, int tile = 256);

}  // namespace histotrain
