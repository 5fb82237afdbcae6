#include "leakage/group_finder.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "data/groups.h"
#include "data/tile_cache.h"
#include "util/clock.h"
#include "util/csv.h"
#include "util/errors.h"
#include "util/files.h"
#include "util/progress.h"

namespace histotrain {

namespace {

// Bump when signatures, matching or defaults change: cached groups made otherwise are not reused.
constexpr char kGroupsMethod[] = "near-copies-v1";

std::vector<std::string> image_paths(const ScanResult& scan) {
  std::vector<std::string> paths;
  for (const auto& image : scan.images) paths.push_back(image.path);
  return paths;
}

// "<class>-g0001": numbered within the class in order of each group's first image.
std::vector<std::string> group_names(const ScanResult& scan, const std::vector<int64_t>& group) {
  std::map<int64_t, std::string> name_of_group;
  std::map<std::string, int> used_in_class;
  std::vector<std::string> names;
  for (size_t i = 0; i < group.size(); ++i) {
    auto it = name_of_group.find(group[i]);
    if (it == name_of_group.end()) {
      const std::string& cls = scan.images[i].class_name;
      char number[16];
      std::snprintf(number, sizeof number, "-g%04d", ++used_in_class[cls]);
      it = name_of_group.emplace(group[i], cls + number).first;
    }
    names.push_back(it->second);
  }
  return names;
}

}  // namespace

FoundGroups find_groups(const ScanResult& scan, const NearCopyOptions& options, int threads, bool quiet,
                        const TileCache* cache) {
  const auto start = std::chrono::steady_clock::now();
  // From the run's tile cache when its tiles hold at least a signature's detail; smaller tiles
  // would blur near-copies together, so those images are decoded at the signature's size.
  const bool from_cache = cache && cache->size() >= kSignatureTileSize;
  const TileSignatures signatures =
      from_cache ? signatures_of_cache(*cache, threads, quiet) : compute_signatures(image_paths(scan), threads, quiet);
  const NearCopyGroups found = find_near_copy_groups(signatures, class_indices(scan, scan.classes), options);
  FoundGroups result;
  result.group_of_image = group_names(scan, found.group);
  result.groups = found.groups;
  result.pairs_scored = found.pairs_scored;
  result.links = found.links;
  result.errors = signatures.errors;
  result.seconds = seconds_since(start);
  return result;
}

std::string groups_csv_text(const ScanResult& scan, const std::vector<std::string>& group_of_image) {
  std::string csv = "filename,label,group_id\n";
  for (size_t i = 0; i < scan.images.size(); ++i)
    csv += csv_field(std::filesystem::path(scan.images[i].path).filename().string()) + "," +
           csv_field(scan.images[i].class_name) + "," + csv_field(group_of_image[i]) + "\n";
  return csv;
}

FoundGroups cached_groups(const ScanResult& scan, const std::string& cache_dir, int threads, bool quiet,
                          const TileCache* tiles) {
  const std::string dir = cache_dir.empty() ? default_cache_dir() : cache_dir;
  Fnv1a method;
  method.add(std::string(kGroupsMethod));
  if (tiles && tiles->size() >= kSignatureTileSize) method.add(static_cast<uint64_t>(tiles->size()));  // from these tiles
  const std::string path = dir + "/" + cache_file_base(scan) + "-" +
                           hex64(scan_fingerprint(scan, method.value)).substr(0, 12) + ".groups.csv";
  if (std::filesystem::exists(path)) {
    std::unordered_map<std::string, std::string> csv;
    try {
      csv = read_groups_csv(path);
    } catch (const Error&) {
      // A damaged cache file (or one an older version wrote unquoted) is found again and
      // rewritten, never a failure of every later run.
    }
    const GroupAssignment assigned = assign_groups(scan, &csv);
    if (assigned.missing == 0) {
      FoundGroups result;
      result.group_of_image = assigned.group_of_image;
      result.groups = static_cast<int64_t>(std::set<std::string>(result.group_of_image.begin(), result.group_of_image.end()).size());
      result.cache_path = path;
      result.reused = true;
      return result;
    }
  }
  FoundGroups result = find_groups(scan, NearCopyOptions{}, threads, quiet, tiles);
  ensure_writable_dir(dir);
  write_file_atomically(path, groups_csv_text(scan, result.group_of_image));
  result.cache_path = path;
  return result;
}

GroupFinder near_copy_group_finder(const std::string& cache_dir, int threads, bool quiet) {
  return [=](const ScanResult& scan, const TileCache* tiles) {
    const FoundGroups found = cached_groups(scan, cache_dir, threads, quiet, tiles);
    FoundSourceGroups groups;
    groups.group_of_image = found.group_of_image;
    groups.origin = "groups: " + std::to_string(found.groups) + " near-copy groups found from the pixels" +
                    (found.reused ? "" : " in " + format_duration(found.seconds)) + " (" +
                    (found.reused ? "reused " : "saved to ") + found.cache_path + ")";
    return groups;
  };
}

}  // namespace histotrain
