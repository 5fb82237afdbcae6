// Which parts of a slide are tissue, found on a thumbnail (a few hundred to two thousand pixels a
// side). The method, in order:
//   1. each pixel's colour averaged over a small neighbourhood (about 1/200 of the thumbnail),
//      then its saturation S = (max - min) / max and value V = max: glass is bright and grey
//      (low S), stained tissue is coloured, and thin structure with pale spaces reads as pale tissue;
//   2. a pixel is tissue when S is above the glass (the median plus 8 median absolute deviations
//      of the pixels under Otsu's threshold, at most Otsu's, at least a floor), V is above a
//      floor (black pen and dark dust are not tissue), and its hue is not green or blue (pen
//      marks; haematoxylin and eosin are purple to pink);
//   3. a morphological opening (3 x 3) removes specks, a closing (5 x 5) fills small gaps,
//      connected regions smaller than `min_area_fraction` of the thumbnail go, and holes (glass
//      no path joins to the border: alveoli, lumens) are filled.
// Each tile's tissue fraction is then the share of its thumbnail pixels in the mask.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/image.h"
#include "util/polygon.h"

namespace histotrain {

struct TissueOptions {
  double min_saturation = 20.0 / 255;  // the floor under Otsu's threshold
  double min_value = 0.25;             // darker: pen or dust
  double min_area_fraction = 1e-4;     // smaller regions are dust
};

struct TissueMask {
  int width = 0, height = 0;
  double downsample = 1;          // level-0 pixels per mask pixel
  std::vector<uint8_t> tissue;    // 1: tissue, row-major
  double threshold = 0;           // the saturation threshold used, 0..1
  std::string method;             // for the log and summaries

  bool at(int x, int y) const { return tissue[static_cast<size_t>(y) * width + x] != 0; }
  // The share of the level-0 `box` that is tissue (pixels of the mask it overlaps, weighted by
  // how much of each it covers).
  double fraction(const Box& box) const;
  // Tissue area in level-0 pixels.
  double area_pixels() const;
};

// The tissue of `thumbnail`, which shows the slide at `downsample` level-0 pixels per pixel.
TissueMask detect_tissue(const RgbImage& thumbnail, double downsample, const TissueOptions& options = {});

// The thumbnail with what is not tissue greyed out and the tissue's edge drawn in green: how a
// person checks the detection (`tile` and `predict --slide` write it as tissue.png).
RgbImage tissue_picture(const RgbImage& thumbnail, const TissueMask& mask);

// Otsu's threshold of 8-bit values: the one that maximises the between-class variance.
int otsu_threshold(const std::vector<int64_t>& histogram);

}  // namespace histotrain
