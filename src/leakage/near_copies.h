// Near-copy detection: which tiles were cut from the same source image. Two steps, both on
// tile signatures (tile_signature.h):
//   1. candidates: each tile's nearest neighbours by the invariant descriptor, within its class;
//   2. verification: a match score, the best correlation of the two log-polar signatures over
//      every rotation (64 angle shifts), both flip states and zooms of up to +-3 rings.
// Tiles whose score passes the threshold are linked, and the connected components are groups.
// Verification is what keeps different sources apart: on LC25000's lung tiles the descriptor's
// neighbours are a third wrong, but only ~1 in 500 wrong pairs passes the match threshold.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "leakage/tile_signature.h"

namespace histotrain {

struct NearCopyOptions {
  int neighbours = 16;       // candidates per tile
  double threshold = 0.75;   // match score (a correlation, -1..1) from which two tiles are near-copies
  int max_zoom_rings = 3;    // zoom searched; neighbouring rings are 11% apart, so 3 rings is 1.37x
};

// Best match score of each pair (a[first[p]], b[second[p]]).
torch::Tensor match_scores(const TileSignatures& a, const std::vector<int64_t>& first, const TileSignatures& b,
                           const std::vector<int64_t>& second, int max_zoom_rings);

struct NearCopyGroups {
  std::vector<int64_t> group;  // per tile, 0..groups-1, numbered in order of first member
  int64_t groups = 0;
  int64_t pairs_scored = 0;
  int64_t links = 0;           // pairs that passed the threshold
};

// Groups the tiles of `signatures`; only tiles with the same label are compared (every label the
// same: one class). Tiles that failed to decode are groups of their own.
NearCopyGroups find_near_copy_groups(const TileSignatures& signatures, const std::vector<int64_t>& labels,
                                     const NearCopyOptions& options);

struct NearestCopy {
  int64_t match = -1;   // index in the reference set, -1 when it has no tile of the same label
  float score = -1;     // its match score
};

// For each query tile, its best-matching reference tile of the same label (split audits).
std::vector<NearestCopy> nearest_copies(const TileSignatures& query, const std::vector<int64_t>& query_labels,
                                        const TileSignatures& reference, const std::vector<int64_t>& reference_labels,
                                        const NearCopyOptions& options);

}  // namespace histotrain
