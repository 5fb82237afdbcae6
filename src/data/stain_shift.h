// Stain shifts for testing a model against other labs' colours (`histotrain restain`, the
// stain-shift benchmark): the HED perturbation that --stain-augment trains with, at any strength,
// and a "second lab": each tile's own Macenko stains moved towards another lab's.
#pragma once
#include <cstdint>

#include "data/stain_normalization.h"

namespace histotrain {

// Macenko et al.'s published reference stains (H 0.5626 0.7201 0.4062 up to 1.9705, E 0.2159
// 0.8012 0.5581 up to 1.0308): the default "other lab".
MacenkoStains macenko_published_stains();

// The tile's stain concentrations jittered once as --stain-augment hed:SIGMA does, the draw seeded
// by `seed` (the same tile and seed: the same shift).
void shift_hed(uint8_t* rgb, int64_t pixels, double sigma, uint64_t seed);

// The tile redrawn with its own stain vectors and concentration ranges moved `strength` (0: none,
// 1: all the way) towards `lab`'s; false (the tile as it was) when it holds too little stain.
bool shift_towards_lab(uint8_t* rgb, int64_t pixels, const MacenkoStains& lab, double strength);

}  // namespace histotrain
