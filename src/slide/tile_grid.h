// Tiles of a slide: the grid of level-0 squares a tile covers at the wanted microns per pixel,
// the tissue fraction of each, and a tile read from the pyramid level nearest its resolution
// (never a whole level), resized to the tile's side.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/image.h"
#include "slide/slide_file.h"
#include "slide/tissue.h"

namespace histotrain {

struct TileGeometry {
  int tile_px = 224;     // side of a tile as written or given to the model
  double mpp = 0;        // microns per tile pixel (0: the slide's level 0, whatever it is)
  int64_t side0 = 224;   // level-0 pixels a tile covers
  int level = 0;         // the level read
  int64_t read_side = 224;  // pixels read at that level for a tile
};

// Where a tile of `tile_px` pixels at `mpp` microns per pixel (0: level 0's own) comes from.
// Throws Error when the slide has no microns per pixel but `mpp` asks for one, or a tile would be
// larger than the slide.
TileGeometry tile_geometry(const SlideFile& slide, int tile_px, double mpp);

struct SlideTile {
  int64_t x = 0, y = 0;  // level-0 top-left
  double tissue = 0;     // share of the tile that is tissue
};

// The side of the thumbnail the tissue is found on: about 8 mask pixels along a tile's side, between
// 1024 and 2048 pixels, so a slide of few large tiles is not read at more detail than it needs.
int thumbnail_side(const SlideFile& slide, int64_t side0);

// The grid's tiles (whole tiles only, from the top-left corner) with at least `min_tissue`.
std::vector<SlideTile> tissue_tiles(const TissueMask& mask, int64_t width, int64_t height, int64_t side0,
                                    double min_tissue);

// The tile at level-0 (x, y), `geometry.tile_px` a side.
RgbImage read_tile(const SlideFile& slide, const TileGeometry& geometry, int64_t x, int64_t y);

// A file name made of a slide's name: letters, digits, '.', '_' and '-' kept, the rest '_', never
// starting with '.' (a slide named "../x.svs" must not become a path).
std::string safe_name(const std::string& name);

}  // namespace histotrain
