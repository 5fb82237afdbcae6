// Source-image groups for a dataset that comes without them: found from the images themselves
// (near_copies.h) and cached beside the tile cache, so that `train` can split by group by default.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "leakage/near_copies.h"
#include "data/scan.h"

namespace histotrain {

struct FoundGroups {
  std::vector<std::string> group_of_image;  // per scanned image: "<class>-g<number>"
  int64_t groups = 0;
  int64_t pairs_scored = 0, links = 0;
  std::vector<std::string> errors;  // images that could not be decoded (each is its own group)
  double seconds = 0;
  std::string cache_path;            // where cached_groups keeps them
  bool reused = false;               // read from that cache
};

// Groups near-copies within each class: from the tiles of `cache` (the run's own, each image
// decoded once) or, without one, by decoding every image of the scan.
FoundGroups find_groups(const ScanResult& scan, const NearCopyOptions& options, int threads, bool quiet,
                        const TileCache* cache = nullptr);

// `filename,label,group_id` for every image of the scan (read_groups_csv reads it back).
std::string groups_csv_text(const ScanResult& scan, const std::vector<std::string>& group_of_image);

// The groups of this scan with default options, from `cache_dir` (empty: default_cache_dir()) when
// the same files were grouped before, else found and saved there.
FoundGroups cached_groups(const ScanResult& scan, const std::string& cache_dir, int threads, bool quiet,
                          const TileCache* tiles = nullptr);

// cached_groups as the dataset's group finder (DataOptions::find_groups), with its log line.
GroupFinder near_copy_group_finder(const std::string& cache_dir, int threads, bool quiet);

}  // namespace histotrain
