// Synthetic whole-slide images for tests and the demo (`histotrain synth --slide`): a pyramidal
// tiled TIFF (slide/pyramid_tiff.h) holding tissue regions of known classes painted with the
// synthetic tissue of synth.h, on glass, with the things a tissue detector must not take for
// tissue (blue and green pen strokes, dust) and one it must (a tissue fold: a darker, more
// stained band across a region), and a GeoJSON of the true regions as QuPath exports them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/image.h"
#include "slide/geojson.h"

namespace histotrain {

struct SyntheticSlideOptions {
  std::string out;                   // the .tif; the regions go to the same name with .geojson
  int width = 4096, height = 3072;   // level 0
  double mpp = 0.5;                  // microns per level-0 pixel (written in the resolution tags)
  uint64_t seed = 1;
  std::vector<std::string> classes;  // one region each, in a grid (empty: every LC25000 class)
  bool pen = true, dust = true, fold = true;
  int texture = 256;                 // side of the synthetic tiles the regions are painted with
};

struct SyntheticSlide {
  std::vector<Annotation> regions;  // the true regions, level-0 pixels
  std::string geojson;              // where they were written
  int levels = 0;
};

// The slide's level-0 pixels and its true regions, in memory (what write_synthetic_slide writes).
RgbImage paint_synthetic_slide(const SyntheticSlideOptions& options, std::vector<Annotation>& regions);

SyntheticSlide write_synthetic_slide(const SyntheticSlideOptions& options);

}  // namespace histotrain
