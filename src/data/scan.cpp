#include "data/scan.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "data/image_format.h"
#include "util/errors.h"
#include "util/json_text.h"

namespace histotrain {

namespace fs = std::filesystem;

bool is_image_file(const std::string& path) {
  return has_image_extension(path) || detect_image_file_format(path) != ImageFormat::unknown;
}

static bool is_hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

namespace {

// Every folder seen while walking, with its image count, and those that hold folders.
struct FolderCounts {
  std::map<std::string, int> images_per_dir;
  std::set<std::string> dirs_with_subdirs;
};

ImageFile image_file(const fs::directory_entry& entry, std::error_code& ec) {
  ImageFile image;
  image.path = entry.path().string();
  image.class_name = entry.path().parent_path().filename().string();
  image.bytes = entry.file_size(ec);
  image.mtime_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(entry.last_write_time(ec).time_since_epoch()).count();
  return image;
}

// Walks `result.root`, skipping hidden files and folders: the images into result.images.
FolderCounts walk(ScanResult& result, const std::string& root_arg) {
  FolderCounts counts;
  std::error_code ec;
  auto it = fs::recursive_directory_iterator(result.root, fs::directory_options::skip_permission_denied, ec);
  if (ec) throw Error("cannot read folder '" + root_arg + "': " + ec.message());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) throw Error("cannot read folder '" + root_arg + "': " + ec.message());
    const fs::path& p = it->path();
    if (is_hidden(p)) {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (it->is_directory(ec)) {
      counts.images_per_dir.emplace(p.string(), 0);
      counts.dirs_with_subdirs.insert(p.parent_path().string());
      continue;
    }
    if (!it->is_regular_file(ec)) continue;
    if (!is_image_file(p.string())) {
      ++result.ignored_files;
      continue;
    }
    ++counts.images_per_dir[p.parent_path().string()];
    result.images.push_back(image_file(*it, ec));
  }
  return counts;
}

// A leaf folder without images whose siblings are class folders is almost surely a class whose
// images are missing: say so instead of silently training on fewer classes.
std::vector<std::string> empty_class_folders(const FolderCounts& counts) {
  std::set<std::string> parents_of_classes;
  for (const auto& [dir, count] : counts.images_per_dir)
    if (count > 0) parents_of_classes.insert(fs::path(dir).parent_path().string());
  std::vector<std::string> empty;
  for (const auto& [dir, count] : counts.images_per_dir)
    if (count == 0 && !counts.dirs_with_subdirs.count(dir) &&
        parents_of_classes.count(fs::path(dir).parent_path().string()))
      empty.push_back(dir);
  return empty;
}

// Images lying in the data folder itself would all be one class named after the folder: said at
// once, before anything is decoded, with the way to give them labels.
void refuse_flat_folder(const ScanResult& result, const std::string& root_arg) {
  fs::path root(result.root);
  if (!root.has_filename()) root = root.parent_path();  // "tiles/" names the same folder as "tiles"
  int64_t flat = 0;
  for (const auto& image : result.images) flat += fs::path(image.path).parent_path() == root;
  if (flat == 0) return;
  throw Error("'" + root_arg + "' holds " + std::to_string(flat) + " image(s) directly, not in class folders: --data "
              "reads one folder per class (lung_aca/, lung_n/, ...), so they would all be one class named '" +
              root.filename().string() + "'. For a flat folder with a CSV of labels, use --manifest "
              "labels.csv --root '" + root_arg + "' (and --columns path=filename,label=diagnosis,group=patient_id "
              "when its columns have other names)");
}

}  // namespace

ScanResult scan_image_folder(const std::string& root_arg) {
  std::error_code ec;
  if (!fs::exists(root_arg, ec)) throw Error("data folder '" + root_arg + "' does not exist");
  if (!fs::is_directory(root_arg, ec)) throw Error("'" + root_arg + "' is not a folder");

  ScanResult result;
  result.root = fs::absolute(root_arg).lexically_normal().string();
  const FolderCounts counts = walk(result, root_arg);
  if (result.images.empty())
    throw Error("no images found under '" + root_arg +
                "' (expected class folders such as lung_aca/ holding JPEG, PNG, TIFF, BMP or WebP tiles)");

  refuse_flat_folder(result, root_arg);
  std::sort(result.images.begin(), result.images.end(),
            [](const ImageFile& a, const ImageFile& b) { return a.path < b.path; });
  std::set<std::string> classes;
  for (const auto& image : result.images) classes.insert(image.class_name);
  result.classes.assign(classes.begin(), classes.end());
  // Class names travel through checkpoint.json and every report: JSON holds only UTF-8.
  for (const auto& name : result.classes)
    if (!is_utf8(name))
      throw Error("class folder '" + (fs::path(root_arg) / name).string() +
                  "' has a name that is not UTF-8 text; rename it (class names are written to JSON reports)");
  result.empty_class_folders = empty_class_folders(counts);
  return result;
}

std::vector<int64_t> class_indices(const ScanResult& scan, const std::vector<std::string>& classes) {
  std::map<std::string, int64_t> index;
  for (size_t i = 0; i < classes.size(); ++i) index[classes[i]] = static_cast<int64_t>(i);
  std::vector<int64_t> labels;
  labels.reserve(scan.images.size());
  for (const auto& image : scan.images) {
    auto found = index.find(image.class_name);
    if (found == index.end()) {
      std::string known;
      for (const auto& c : classes) known += (known.empty() ? "" : ", ") + c;
      throw Error((scan.from_manifest ? "label '" : "class folder '") + image.class_name +
                  "' is not one of the model's classes (" + known + ")");
    }
    labels.push_back(found->second);
  }
  return labels;
}

}  // namespace histotrain
