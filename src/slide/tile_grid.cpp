#include "slide/tile_grid.h"

#include <algorithm>
#include <cmath>

#include "data/resize.h"
#include "util/errors.h"

namespace histotrain {

TileGeometry tile_geometry(const SlideFile& slide, int tile_px, double mpp) {
  if (tile_px < 8 || tile_px > 4096) throw UsageError("--tile-size must be from 8 to 4096 pixels");
  TileGeometry g;
  g.tile_px = tile_px;
  double scale = 1;  // level-0 pixels per tile pixel
  if (mpp > 0) {
    if (slide.mpp() <= 0)
      throw Error("'" + slide.path() + "' says nothing of its microns per pixel: give --slide-mpp (its level 0's) "
                  "or leave out --mpp to cut tiles at level 0");
    scale = mpp / slide.mpp();
    g.mpp = mpp;
  } else {
    g.mpp = slide.mpp();
  }
  g.side0 = std::max<int64_t>(1, std::llround(tile_px * scale));
  if (g.side0 > std::min(slide.width(), slide.height()))
    throw Error("'" + slide.path() + "' is " + std::to_string(slide.width()) + " x " + std::to_string(slide.height()) +
                " pixels: a tile of " + std::to_string(g.side0) + " level-0 pixels does not fit");
  g.level = slide.best_level(scale);
  g.read_side = std::max<int64_t>(1, std::llround(g.side0 / slide.levels()[static_cast<size_t>(g.level)].downsample));
  return g;
}

int thumbnail_side(const SlideFile& slide, int64_t side0) {
  constexpr int64_t kMaskPixelsPerTile = 8, kSmallest = 1024, kLargest = 2048;
  const int64_t longest = std::max(slide.width(), slide.height());
  return static_cast<int>(std::clamp(kMaskPixelsPerTile * longest / std::max<int64_t>(1, side0), kSmallest, kLargest));
}

std::vector<SlideTile> tissue_tiles(const TissueMask& mask, int64_t width, int64_t height, int64_t side0,
                                    double min_tissue) {
  std::vector<SlideTile> tiles;
  for (int64_t y = 0; y + side0 <= height; y += side0)
    for (int64_t x = 0; x + side0 <= width; x += side0) {
      const double tissue = mask.fraction({static_cast<double>(x), static_cast<double>(y), static_cast<double>(x + side0),
                                           static_cast<double>(y + side0)});
      if (tissue >= min_tissue && tissue > 0) tiles.push_back({x, y, tissue});
    }
  return tiles;
}

RgbImage read_tile(const SlideFile& slide, const TileGeometry& g, int64_t x, int64_t y) {
  const RgbImage region = slide.read(x, y, g.level, g.read_side, g.read_side);
  if (region.width == g.tile_px && region.height == g.tile_px) return region;
  return resize_rgb(region, g.tile_px, g.tile_px);
}

std::string safe_name(const std::string& name) {
  std::string out;
  for (const char c : name)
    out += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-') ? c : '_';
  if (out.empty() || out[0] == '.') out = "slide" + out;
  return out.substr(0, 120);
}

}  // namespace histotrain
