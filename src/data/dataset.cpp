#include "data/dataset.h"

#include <sstream>

#include "data/groups.h"
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

// From the CSV when there is one; else found from the pixels when asked; else one per image.
static GroupAssignment source_groups(TileDataset& data, const DataOptions& options) {
  if (!options.groups_csv.empty()) {
    const auto csv = read_groups_csv(options.groups_csv);
    data.groups_origin = "groups: from " + options.groups_csv;
    return assign_groups(data.scan, &csv);
  }
  if (!options.find_groups) {
    data.groups_origin = "groups: none, each image is its own";
    return assign_groups(data.scan, nullptr);
  }
  FoundSourceGroups found = options.find_groups(data.scan);
  data.groups_origin = std::move(found.origin);
  GroupAssignment assigned;
  assigned.group_of_image = std::move(found.group_of_image);
  return assigned;
}

TileDataset load_dataset(const DataOptions& options, const std::vector<std::string>* fixed_classes) {
  TileDataset data;
  data.scan = scan_image_folder(options.root);
  data.classes = fixed_classes ? *fixed_classes : data.scan.classes;
  const std::vector<int64_t> all_labels = class_indices(data.scan, data.classes);

  const GroupAssignment groups = source_groups(data, options);
  data.groups_missing = groups.missing;

  TileCacheOptions cache_options;
  cache_options.size = options.image_size;
  cache_options.cache_dir = options.cache_dir;
  cache_options.threads = options.workers;
  cache_options.quiet = options.quiet;
  data.cache = TileCache::open_or_build(data.scan, cache_options);

  for (int64_t i = 0; i < data.cache->count(); ++i) {
    if (!data.cache->decoded(i)) continue;
    data.rows.push_back(i);
    data.labels.push_back(all_labels[i]);
    data.groups.push_back(groups.group_of_image[i]);
  }
  if (data.rows.empty()) throw Error("none of the " + std::to_string(data.cache->count()) + " JPEGs under '" +
                                     options.root + "' could be decoded");
  return data;
}

std::string describe(const TileDataset& data) {
  std::ostringstream out;
  out << "data: " << data.size() << " images in " << data.classes.size() << " classes (";
  const auto counts = data.class_counts();
  for (size_t k = 0; k < data.classes.size(); ++k) out << (k ? ", " : "") << data.classes[k] << " " << counts[k];
  out << ") from " << data.scan.root << "\n";
  out << "tile cache: " << data.cache->path() << " (" << data.image_size() << " px, "
      << (data.cache->reused() ? "reused" : "built") << ")";
  if (const int64_t failed = data.cache->failed())
    out << "\nskipped " << failed << " image(s) that could not be decoded"
        << (data.cache->errors().empty() ? "" : ", e.g. " + data.cache->errors().front());
  if (!data.groups_origin.empty()) out << "\n" << data.groups_origin;
  if (data.scan.ignored_files) out << "\nignored " << data.scan.ignored_files << " file(s) that are not JPEGs";
  for (const auto& dir : data.scan.empty_class_folders) out << "\nwarning: folder " << dir << " holds no images";
  if (data.groups_missing) out << "\nwarning: the groups file does not name " << data.groups_missing << " image(s)";
  return out.str();
}

}  // namespace histotrain
