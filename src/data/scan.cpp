#include "data/scan.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "util/errors.h"
#include "util/json_text.h"

namespace histotrain {

namespace fs = std::filesystem;

bool has_jpeg_extension(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".jpg" || ext == ".jpeg";
}

static bool is_hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

ScanResult scan_image_folder(const std::string& root_arg) {
  std::error_code ec;
  if (!fs::exists(root_arg, ec)) throw Error("data folder '" + root_arg + "' does not exist");
  if (!fs::is_directory(root_arg, ec)) throw Error("'" + root_arg + "' is not a folder");

  ScanResult result;
  result.root = fs::absolute(root_arg).lexically_normal().string();
  std::map<std::string, int> images_per_dir;  // every folder seen, with its image count
  std::set<std::string> dirs_with_subdirs;

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
      images_per_dir.emplace(p.string(), 0);
      dirs_with_subdirs.insert(p.parent_path().string());
      continue;
    }
    if (!it->is_regular_file(ec)) continue;
    if (!has_jpeg_extension(p.string())) {
      ++result.ignored_files;
      continue;
    }
    ImageFile image;
    image.path = p.string();
    image.class_name = p.parent_path().filename().string();
    image.bytes = it->file_size(ec);
    image.mtime_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                         it->last_write_time(ec).time_since_epoch()).count();
    ++images_per_dir[p.parent_path().string()];
    result.images.push_back(std::move(image));
  }
  if (result.images.empty())
    throw Error("no JPEG images found under '" + root_arg +
                "' (expected class folders such as lung_aca/ holding .jpeg tiles)");

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

  // A leaf folder without images whose siblings are class folders is almost surely a class
  // whose images are missing: say so instead of silently training on fewer classes.
  std::set<std::string> parents_of_classes;
  for (const auto& [dir, count] : images_per_dir)
    if (count > 0) parents_of_classes.insert(fs::path(dir).parent_path().string());
  for (const auto& [dir, count] : images_per_dir)
    if (count == 0 && !dirs_with_subdirs.count(dir) && parents_of_classes.count(fs::path(dir).parent_path().string()))
      result.empty_class_folders.push_back(dir);
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
      throw Error("class folder '" + image.class_name + "' is not one of the model's classes (" + known + ")");
    }
    labels.push_back(found->second);
  }
  return labels;
}

}  // namespace histotrain
