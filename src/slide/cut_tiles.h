// `histotrain tile`: tiles cut from slides into PNG files, with a manifest `train --manifest`
// reads. Per slide: its tissue (slide/tissue.h), the grid at the wanted resolution
// (slide/tile_grid.h), each tissue tile labelled by the annotated region covering enough of it
// (QuPath GeoJSON) or by the slide's label (a CSV of slide,patient,label), and its group: the
// patient where the CSV names one, else the slide, so that splits and folds keep them together.
// A slide that cannot be read is reported and the others go on.
#pragma once
#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace histotrain {

struct CutOptions {
  std::string out;                  // the folder of tiles and manifest.csv
  int tile_px = 224;                // tile side as written
  double mpp = 0;                   // microns per tile pixel (0: the slide's level 0)
  double slide_mpp = 0;             // a slide's own level-0 microns per pixel, when it has none
  double min_tissue = 0.5;          // a tile's tissue share to be cut
  double min_label_overlap = 0.5;   // a region's share of a tile to give it its label
  std::string background_label;     // for tissue no region covers (empty: such tiles are skipped)
  std::string annotations;          // a GeoJSON file (one slide), or a folder of SLIDE.geojson
  std::string slides_csv;           // slide,patient,label: one label per slide
  std::set<std::string> labels;     // only these classification names (empty: every one)
  int threads = 0;
  bool quiet = false;
};

struct CutReport {
  int64_t tiles = 0;
  std::vector<std::string> failed;  // "slide: why"
  std::string manifest;
};

CutReport cut_tiles(const std::vector<std::string>& slides, const CutOptions& options);

}  // namespace histotrain
