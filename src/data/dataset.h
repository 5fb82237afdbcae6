// A dataset ready for training or evaluation: the scanned images, their classes and groups, and
// the decoded tiles in a memory-mapped cache. Images that failed to decode are left out here,
// once, so nothing downstream has to know about them.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/manifest.h"
#include "data/scan.h"
#include "data/stain_normalization.h"
#include "data/tile_cache.h"

namespace histotrain {

// Source groups found from the images themselves, and a line for the log saying how.
struct FoundSourceGroups {
  std::vector<std::string> group_of_image;  // per scanned image
  std::string origin;
};
// Finds the groups of a scan that comes without a groups CSV, from its tile cache's tiles (each
// image is decoded once per run); leakage/group_finder.h makes one that groups near-copies.
using GroupFinder = std::function<FoundSourceGroups(const ScanResult& scan, const TileCache* tiles)>;

struct DataOptions {
  std::string root;         // a folder of class folders, or:
  std::string manifest;     // a CSV listing path,label[,group][,split] (data/manifest.h)
  ManifestOptions manifest_options;  // its column names and the root of its relative paths
  std::string val_root;     // optional: a second folder, the dataset's own validation set
  // Keep only the images of this split (a manifest's split column); with only_split_if_present,
  // all images when none is of that split.
  std::string only_split;
  bool only_split_if_present = false;
  int image_size = 128;
  std::string groups_csv;  // optional filename,label,group_id
  GroupFinder find_groups;  // without a CSV: how to find groups (empty: each image is its own)
  std::string cache_dir;   // empty: default_cache_dir()
  int workers = 0;         // decode threads; 0: all cores
  bool quiet = false;
  StainReference stain;    // tiles normalised to it once, into a cache of their own (none: as decoded)
};

struct TileDataset {
  ScanResult scan;
  std::shared_ptr<TileCache> cache;
  std::vector<std::string> classes;
  // One entry per usable image (decoded fine), in scan order:
  std::vector<int64_t> rows;         // row in the cache
  std::vector<int64_t> labels;       // index into classes
  std::vector<std::string> groups;   // source-image group
  std::vector<std::string> splits;   // the dataset's own split (train/val/test), "" when it has none
  int64_t groups_missing = 0;        // images a groups CSV did not name
  std::string groups_origin;         // where the groups came from, for the log

  int64_t size() const { return static_cast<int64_t>(rows.size()); }
  int image_size() const { return cache->size(); }
  const std::string& path(int64_t i) const { return scan.images[rows[i]].path; }
  // uint8 [cache rows, H, W, 3] over the mapped cache: no copy.
  torch::Tensor tiles() const;
  // Images per class, in class order.
  std::vector<int64_t> class_counts() const;
  // Whether the dataset says its own split (a manifest's split column, or --val-data).
  bool has_given_split() const;
};

// Scans (or reads the manifest), reads groups, opens (or builds) the tile cache. With `fixed_classes` (a trained model's
// classes), folders are matched to them by name: a subset is fine, an unknown class is an Error.
TileDataset load_dataset(const DataOptions& options, const std::vector<std::string>* fixed_classes = nullptr);

// Replaces the dataset's tiles by their copies normalised to `reference` (a tile cache derived
// from the decoded one, built once and reused); returns the line for the log.
std::string normalize_dataset_stains(TileDataset& data, const StainReference& reference, const DataOptions& options);

// A stain reference fitted on the tiles of `items` (dataset indices; at most 512 of them, spread
// evenly), or on one image file decoded at the dataset's tile size.
StainReference fit_reference_on_items(StainMethod method, const TileDataset& data, const std::vector<int64_t>& items);
StainReference fit_reference_on_file(StainMethod method, const std::string& path, int size);

// Microns per pixel of the model's input: the tiles' shared mpp (a manifest's mpp column) times
// the resize from their stored side to the image size, the first usable tile standing for all;
// 0 when the tiles do not say. Slide prediction reads tiles at this scale.
double model_input_mpp(const TileDataset& data);

// One paragraph for the log: counts per class, skipped files, where the cache is.
std::string describe(const TileDataset& data);

}  // namespace histotrain
