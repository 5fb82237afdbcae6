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
};

struct ScanResult {
  std::string root;                      // absolute
  std::vector<ImageFile> images;         // sorted by path
  std::vector<std::string> classes;      // sorted, unique
  std::vector<std::string> empty_class_folders;  // leaf folders beside class folders, with no image
  int64_t ignored_files = 0;             // files that are not JPEGs (README, .DS_Store, ...)
};

// True for .jpg/.jpeg in any letter case.
bool has_jpeg_extension(const std::string& path);

// Scans `root`; throws Error when it is missing, not a folder, or holds no JPEG at all.
// Hidden entries (".name") are skipped: caches and editor files live there.
ScanResult scan_image_folder(const std::string& root);

// Index of each image's class in `classes`.
std::vector<int64_t> class_indices(const ScanResult& scan, const std::vector<std::string>& classes);

}  // namespace histotrain
