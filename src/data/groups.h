// Source-image groups and the train/validation split that keeps each group on one side.
// LC25000 augmented each source image into ~20 near-copies: an image-level split leaks them
// across the split and overstates accuracy, so splits are made per group.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/scan.h"

namespace histotrain {

// Reads `filename,label,group_id` (header required; label may be empty), or a manifest's names
// `path,label,group` (the path's file name is used), into file name -> group.
std::unordered_map<std::string, std::string> read_groups_csv(const std::string& path);

struct GroupAssignment {
  std::vector<std::string> group_of_image;  // one per scanned image
  int64_t missing = 0;                       // images the CSV did not name (each is its own group)
};

// Looks each image's file name up in the CSV; without a CSV every image is its own group.
GroupAssignment assign_groups(const ScanResult& scan, const std::unordered_map<std::string, std::string>* csv);

struct Split {
  std::vector<int64_t> train, val;  // indices into the scanned images, ascending
};

// Per class, shuffles that class's groups with `seed` and moves whole groups to validation until
// it holds about `val_fraction` of the class's images. A group belongs to its majority class.
Split split_by_group(const std::vector<int64_t>& labels, const std::vector<std::string>& groups,
                     double val_fraction, uint64_t seed);

// `folds` disjoint folds of whole groups for cross-validation (indices, ascending): per class,
// the class's groups shuffled with `seed`, then largest first, each to the fold with the fewest
// images of that class. Stratified as far as groups allow: a class with fewer groups than folds
// is missing from some folds.
std::vector<std::vector<int64_t>> grouped_folds(const std::vector<int64_t>& labels, const std::vector<std::string>& groups,
                                                int folds, uint64_t seed);

}  // namespace histotrain
