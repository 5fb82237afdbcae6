// What a tile looks like around its centre, in a form that survives the way LC25000 made its
// near-copies. Each source image was rotated (up to about 25 degrees, then cropped back to a
// square, which also zooms in by up to a third) and flipped into ~20 tiles. All of these keep the
// tile's centre fixed, so the signature samples the tile on a log-polar grid around the centre:
// a rotation becomes a cyclic shift along the angle axis, a flip reverses that axis, and a zoom
// becomes a shift along the (logarithmic) radius axis. Near-copy matching (near_copies.h)
// searches those shifts; the descriptor here is invariant to them and finds candidates fast.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "data/tile_cache.h"

namespace histotrain {

constexpr int kSignatureTileSize = 96;  // tiles are decoded and resized to this side first
constexpr int kSignatureRings = 24;     // radii from 4/96 to 44/96 of the side, evenly spaced in log
constexpr int kSignatureAngles = 64;
constexpr int kDescriptorFrequencies = 4;  // angular frequencies 0..3 of each ring and colour
constexpr int kDescriptorRingBands = 4;    // rings are pooled into this many bands
constexpr int kDescriptorSize = 3 * kDescriptorFrequencies * kDescriptorRingBands;

// Signatures of many tiles, row i for tile i.
struct TileSignatures {
  torch::Tensor rings;       // float [N, rings, angles]: grey, each ring zero-mean, unit variance per tile
  torch::Tensor descriptor;  // float [N, kDescriptorSize]: rotation-, flip- and (roughly) zoom-invariant
  std::vector<bool> ok;      // false where the image could not be decoded (its rows are zeros)
  std::vector<std::string> errors;  // "path: reason" for those

  int64_t size() const { return static_cast<int64_t>(ok.size()); }
};

// The signature of one size x size RGB tile (any size >= 16; radii scale with it).
// `rings` receives kSignatureRings * kSignatureAngles floats, `descriptor` kDescriptorSize.
void tile_signature(const uint8_t* rgb, int size, float* rings, float* descriptor);

// Decodes each JPEG at kSignatureTileSize px and computes its signature, on `threads` threads
// (0: all cores), with a progress bar unless `quiet`.
TileSignatures compute_signatures(const std::vector<std::string>& paths, int threads, bool quiet);

// The same from a tile cache's tiles (each resized to kSignatureTileSize): no image is decoded a
// second time in a run. Tiles the cache could not decode have no signature.
TileSignatures signatures_of_cache(const TileCache& cache, int threads, bool quiet);

// Signatures of tiles already decoded: uint8 [N, size, size, 3].
TileSignatures signatures_of_tiles(const torch::Tensor& tiles);

// The signatures of some of the tiles, in the order of `rows`.
TileSignatures select_rows(const TileSignatures& signatures, const std::vector<int64_t>& rows);

}  // namespace histotrain
