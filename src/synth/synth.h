// Synthetic H&E-like tiles in the LC25000 layout: the demo's data and the tests' data.
//
// Tissue is painted as two stain densities (haematoxylin: nuclei, purple; eosin: cytoplasm and
// stroma, pink) and turned into RGB by Beer-Lambert absorption, like a real stained slide. The
// five classes differ in structure, not colour: stain vectors and intensity are drawn per tile
// independently of the class, so a model has to learn nuclear density, size and shape, glands,
// lumens and cell arrangement.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/image.h"

namespace histotrain {

// colon_aca, colon_n, lung_aca, lung_n, lung_scc: LC25000's classes, sorted.
const std::vector<std::string>& lc25000_classes();

namespace synth {
class Rng;
}

// How a tile is stained: the optical densities of haematoxylin and eosin per RGB channel (their
// vectors, scaled by the stain's strength and the section's thickness) and of the background.
struct StainStyle {
  double h[3], e[3], background[3];
};

// A stain drawn at random, the section thickness in [min_thickness, max_thickness].
StainStyle draw_stain_style(synth::Rng& rng, double min_thickness = 0.55, double max_thickness = 1.5);

// Renders one tile of `class_name` (one of lc25000_classes()); deterministic in (class, size,
// seed). Its stain is drawn per tile, or is `style` (a slide's regions share their slide's).
RgbImage render_synthetic_tile(const std::string& class_name, int size, uint64_t seed, const StainStyle* style = nullptr);

// Rotates `src` (square) about its centre, crops the largest upright square inside the rotated
// image and scales it back to the original size: the zoom grows with the angle (1.33x at 25).
RgbImage rotate_and_crop(const RgbImage& src, double degrees);

struct SynthOptions {
  std::string out;     // dataset root to create
  int per_class = 100; // tiles per class
  int size = 768;      // tile side, px (LC25000's size)
  uint64_t seed = 1;
  // Like LC25000, each source scene is saved as several flipped/rotated copies; groups.csv names
  // the scene of every tile so splits can keep copies together.
  int copies = 2;
  // Copies after the first are also rotated by up to this many degrees either way, then cropped
  // to the largest upright square and scaled back up, as LC25000's augmentation did (25).
  double max_rotation = 0;
  int quality = 90;    // JPEG quality
  int threads = 0;     // 0: all cores
  bool quiet = false;
  bool overwrite = false;  // write into a folder that already holds files (else an Error)
};

struct SynthReport {
  int64_t tiles = 0;
  std::string groups_csv;
};

// Writes <out>/lung_colon_image_set/{lung_image_sets,colon_image_sets}/<class>/<name>N.jpeg and
// <out>/groups.csv (filename,label,group_id).
SynthReport write_synthetic_dataset(const SynthOptions& options);

}  // namespace histotrain
