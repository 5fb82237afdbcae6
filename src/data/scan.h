// Finds the images of a dataset. The class of an image is the name of the folder that directly
// holds it, so LC25000's nested layout (lung_colon_image_set/lung_image_sets/lung_aca/x.jpeg)
// and a flat ImageFolder layout (lung_aca/x.jpeg) both work.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace histotrain {

struct ImageFile {
  std::string path;        // absolute
  std::string class_name;  // the folder that directly holds it
  uint64_t bytes = 0;
  int64_t mtime_ns = 0;
  // Given by a manifest (data/manifest.h) or by --val-data; empty when the folder says nothing.
  std::string group;  // source group
  std::string split;  // train, val or test
  double mpp = 0;     // microns per pixel (a manifest's mpp column: tiles cut from slides); 0: unknown
};

struct ScanResult {
  std::string root;                      // absolute
  std::vector<ImageFile> images;         // sorted by path
  std::vector<std::string> classes;      // sorted, unique
  std::vector<std::string> empty_class_folders;  // leaf folders beside class folders, with no image
  int64_t ignored_files = 0;             // files that are not images (README, .DS_Store, ...)
  bool from_manifest = false;            // classes are a manifest's labels, not folders
  double tile_mpp = 0;                   // the mpp all images share (0: unknown, or they differ)
};

// True for a file named like an image (.jpeg, .png, .tif, ...) or whose first bytes are one of
// the formats histotrain decodes (data/image_format.h): a tile named "x.dat" is still a tile, and
// a damaged "x.png" is counted as damaged, not ignored.
bool is_image_file(const std::string& path);

// Scans `root`; throws Error when it is missing, not a folder, holds no image at all, or holds
// images directly (a flat folder: every tile would be one class named after it; a manifest
// gives flat folders their labels).
// Hidden entries (".name") are skipped: caches and editor files live there.
ScanResult scan_image_folder(const std::string& root);

// Index of each image's class in `classes`.
std::vector<int64_t> class_indices(const ScanResult& scan, const std::vector<std::string>& classes);

}  // namespace histotrain
