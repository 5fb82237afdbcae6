// What the whole-slide tests share: six synthetic slides with their true regions, the truth of a
// place decided from the GeoJSON with the tests' own point-in-polygon (not the project's), models
// trained on tiles cut from the slides, and `predict --slide` run on them.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "cli_harness.h"

namespace histotrain::testing {

inline const std::vector<std::string> kClasses = {"colon_aca", "colon_n", "lung_aca", "lung_n", "lung_scc"};

// Whether this build reads slides; a test failure when run.sh's packages are required.
bool have_openslide();

struct Region {
  std::string label;
  std::vector<std::vector<std::pair<double, double>>> rings;
};

// The regions of a GeoJSON file: each feature's classification name and rings.
std::vector<Region> true_regions(const std::filesystem::path& geojson);

// Even-odd rule over every ring.
bool inside(const Region& r, double x, double y);

// The region covering most of the square (x, y, side), sampled on a 16 x 16 grid, and its share.
std::pair<std::string, double> true_label(const std::vector<Region>& regions, double x, double y, double side);

double shoelace_area(const Region& r);

// A CSV as rows of column -> value.
std::vector<std::map<std::string, std::string>> read_table(const std::filesystem::path& path);

// Six synthetic slides of 3072 x 2304 at 0.5 um/px (slide-1..6.tif, each with its .geojson).
const std::filesystem::path& slides();
std::filesystem::path slide(int n);

// tile's arguments in these tests: 64-px tiles at 1 um/px.
inline const std::vector<std::string> kTileArgs = {"--tile-size", "64", "--mpp", "1.0", "--quiet"};

// ResNet-10 trained on the tiles of `slide_numbers`, cut from their annotations at 1 um/px.
std::filesystem::path train_on_slides(const std::filesystem::path& dir, const std::vector<int>& slide_numbers, int epochs);

// Trained well: slides 1-5, 25 epochs (about 1.5 minutes here).
const std::filesystem::path& trained_on_slides();

// Trained for what does not depend on accuracy: one slide, one epoch.
const std::filesystem::path& quick_model();

// `predict --slide` of each of `slide_args` into `out`.
Finished predict(const std::vector<std::string>& slide_args, const std::filesystem::path& out,
                 const std::map<std::string, std::string>& env = {},
                 const std::filesystem::path& model = quick_model());

}  // namespace histotrain::testing
