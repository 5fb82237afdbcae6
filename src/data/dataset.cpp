#include "data/dataset.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>
#include <sstream>

#include "data/decode.h"
#include "data/groups.h"
#include "data/manifest.h"
#include "util/display_text.h"
#include "util/errors.h"
#include "util/progress.h"

namespace histotrain {

torch::Tensor TileDataset::tiles() const {
  const int s = cache->size();
  // from_blob does not take ownership; the dataset keeps the cache (and its mapping) alive.
  return torch::from_blob(const_cast<uint8_t*>(cache->data()), {cache->count(), s, s, 3}, torch::kUInt8);
}

std::vector<int64_t> TileDataset::class_counts() const {
  std::vector<int64_t> counts(classes.size(), 0);
  for (int64_t label : labels) ++counts[label];
  return counts;
}

bool TileDataset::has_given_split() const {
  return std::any_of(splits.begin(), splits.end(), [](const std::string& s) { return !s.empty(); });
}

namespace {

bool any_image_has(const ScanResult& scan, std::string ImageFile::*field) {
  return std::any_of(scan.images.begin(), scan.images.end(), [&](const ImageFile& i) { return !(i.*field).empty(); });
}

// --val-data: the second folder's images join the scan as the validation split, the first's as
// training. One scan, so one tile cache and one class list for both.
void add_validation_folder(ScanResult& scan, const std::string& val_root) {
  if (any_image_has(scan, &ImageFile::split))
    throw UsageError("--val-data and a manifest's split column both name the validation set: give one");
  ScanResult val = scan_image_folder(val_root);
  for (auto& image : scan.images) image.split = "train";
  for (auto& image : val.images) image.split = "val";
  scan.images.insert(scan.images.end(), val.images.begin(), val.images.end());
  std::set<std::string> classes(scan.classes.begin(), scan.classes.end());
  classes.insert(val.classes.begin(), val.classes.end());
  scan.classes.assign(classes.begin(), classes.end());
  scan.ignored_files += val.ignored_files;
  scan.empty_class_folders.insert(scan.empty_class_folders.end(), val.empty_class_folders.begin(),
                                  val.empty_class_folders.end());
  scan.root += " + " + val.root;  // names the pair, and so their tile cache
}

void keep_only_split(ScanResult& scan, const std::string& split, bool if_present) {
  std::vector<ImageFile> kept;
  for (const auto& image : scan.images)
    if (image.split == split) kept.push_back(image);
  if (kept.empty() && if_present) return;
  if (kept.empty()) throw Error("no image of " + scan.root + " is in the split '" + split + "'");
  scan.images = std::move(kept);
  std::set<std::string> classes;
  for (const auto& image : scan.images) classes.insert(image.class_name);
  scan.classes.assign(classes.begin(), classes.end());
}

ScanResult scan_data(const DataOptions& options) {
  ScanResult scan = options.manifest.empty() ? scan_image_folder(options.root)
                                             : read_manifest(options.manifest, options.manifest_options);
  if (!options.val_root.empty()) add_validation_folder(scan, options.val_root);
  if (!options.only_split.empty()) keep_only_split(scan, options.only_split, options.only_split_if_present);
  return scan;
}

// The manifest's group column; an image it leaves without one is its own group.
GroupAssignment groups_from_scan(const ScanResult& scan) {
  GroupAssignment assigned;
  for (const auto& image : scan.images) {
    assigned.group_of_image.push_back(image.group.empty() ? "image:" + image.path : image.group);
    assigned.missing += image.group.empty();
  }
  return assigned;
}

// From the CSV when there is one; else the manifest's; else found from the pixels when asked;
// else one per image.
GroupAssignment source_groups(TileDataset& data, const DataOptions& options) {
  if (!options.groups_csv.empty()) {
    const auto csv = read_groups_csv(options.groups_csv);
    data.groups_origin = "groups: from " + options.groups_csv;
    return assign_groups(data.scan, &csv);
  }
  if (any_image_has(data.scan, &ImageFile::group)) {
    data.groups_origin = "groups: from the manifest's group column";
    return groups_from_scan(data.scan);
  }
  if (!options.find_groups) {
    data.groups_origin = "groups: none, each image is its own";
    return assign_groups(data.scan, nullptr);
  }
  FoundSourceGroups found = options.find_groups(data.scan, data.cache.get());
  data.groups_origin = std::move(found.origin);
  GroupAssignment assigned;
  assigned.group_of_image = std::move(found.group_of_image);
  return assigned;
}

}  // namespace

TileDataset load_dataset(const DataOptions& options, const std::vector<std::string>* fixed_classes) {
  TileDataset data;
  data.scan = scan_data(options);
  data.classes = fixed_classes ? *fixed_classes : data.scan.classes;
  const std::vector<int64_t> all_labels = class_indices(data.scan, data.classes);

  TileCacheOptions cache_options;
  cache_options.size = options.image_size;
  cache_options.cache_dir = options.cache_dir;
  cache_options.threads = options.workers;
  cache_options.quiet = options.quiet;
  data.cache = TileCache::open_or_build(data.scan, cache_options);

  const GroupAssignment groups = source_groups(data, options);  // found ones from the cache's tiles
  data.groups_missing = groups.missing;
  if (options.stain.method != StainMethod::none) {
    const std::string line = normalize_dataset_stains(data, options.stain, options);
    if (!options.quiet) std::fprintf(stderr, "%s\n", line.c_str());
  }

  for (int64_t i = 0; i < data.cache->count(); ++i) {
    if (!data.cache->decoded(i)) continue;
    data.rows.push_back(i);
    data.labels.push_back(all_labels[i]);
    data.groups.push_back(groups.group_of_image[i]);
    data.splits.push_back(data.scan.images[i].split);
  }
  if (data.rows.empty()) throw Error("none of the " + std::to_string(data.cache->count()) + " images under '" +
                                     data.scan.root + "' could be decoded");
  return data;
}

std::string normalize_dataset_stains(TileDataset& data, const StainReference& reference, const DataOptions& options) {
  TileCacheOptions cache_options;
  cache_options.cache_dir = options.cache_dir;
  cache_options.threads = options.workers;
  cache_options.quiet = options.quiet;
  const TileTransform transform{spelling(reference.method), stain_key(reference),
                                [&reference](uint8_t* tile, int64_t pixels) {
                                  return normalize_stain(reference, tile, pixels);
                                }};
  data.cache = TileCache::open_or_derive(data.scan, *data.cache, transform, cache_options);
  std::string line = "stain normalisation: " + describe(reference) + "; applied once into the tile cache " +
                     printable(data.cache->path()) + (data.cache->reused() ? " (reused)" : " (built)");
  if (const int64_t left = data.cache->untransformed())
    line += "; " + std::to_string(left) + " tile(s) with too little stain to fit were left as they were";
  return line;
}

StainReference fit_reference_on_items(StainMethod method, const TileDataset& data, const std::vector<int64_t>& items) {
  constexpr size_t kMaxTiles = 512;
  std::vector<const uint8_t*> tiles;
  const size_t step = std::max<size_t>(1, (items.size() + kMaxTiles - 1) / kMaxTiles);
  for (size_t i = 0; i < items.size(); i += step) tiles.push_back(data.cache->tile(data.rows[items[i]]));
  const int64_t pixels = int64_t{data.image_size()} * data.image_size();
  return fit_stain_reference(method, tiles, pixels,
                             "train: " + std::to_string(tiles.size()) + " of the " + std::to_string(items.size()) +
                                 " training tiles");
}

StainReference fit_reference_on_file(StainMethod method, const std::string& path, int size) {
  std::vector<uint8_t> tile(static_cast<size_t>(size) * size * 3);
  std::string error;
  if (!decode_tile(path, size, tile.data(), &error))
    throw Error("--stain-reference " + printable(path) + " cannot be read: " + printable(error));
  return fit_stain_reference(method, {tile.data()}, int64_t{size} * size,
                             std::filesystem::path(path).filename().string());
}

double model_input_mpp(const TileDataset& data) {
  if (data.scan.tile_mpp <= 0 || data.rows.empty()) return 0;
  const DecodeResult first = decode_image_file(data.path(0));
  if (!first.ok || first.source_width <= 0) return 0;
  return data.scan.tile_mpp * first.source_width / data.image_size();
}

std::string describe(const TileDataset& data) {
  std::ostringstream out;
  out << "data: " << data.size() << " images in " << data.classes.size() << " classes (";
  const auto counts = data.class_counts();
  for (size_t k = 0; k < data.classes.size(); ++k) out << (k ? ", " : "") << printable(data.classes[k]) << " " << counts[k];
  out << ") from " << printable(data.scan.root) << "\n";
  out << "tile cache: " << printable(data.cache->path()) << " (" << data.image_size() << " px, "
      << (data.cache->reused() ? "reused" : "built") << ")";
  if (const int64_t failed = data.cache->failed())
    out << "\nskipped " << failed << " image(s) that could not be decoded"
        << (data.cache->errors().empty() ? "" : ", e.g. " + printable(data.cache->errors().front()));
  if (!data.groups_origin.empty()) out << "\n" << printable(data.groups_origin);
  if (data.scan.ignored_files) out << "\nignored " << data.scan.ignored_files << " file(s) that are not images";
  for (const auto& dir : data.scan.empty_class_folders) out << "\nwarning: folder " << printable(dir) << " holds no images";
  if (data.groups_missing) out << "\nwarning: the groups file does not name " << data.groups_missing << " image(s)";
  return out.str();
}

}  // namespace histotrain
