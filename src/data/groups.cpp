#include "data/groups.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "util/csv.h"
#include "util/errors.h"
#include "util/files.h"

namespace histotrain {

std::unordered_map<std::string, std::string> read_groups_csv(const std::string& path) {
  const std::string source = "groups file '" + path + "'";
  const std::vector<CsvRecord> records =
      parse_csv(csv_text_for_reading(read_regular_file(path, uint64_t{1} << 30), source), source);
  if (records.empty()) throw Error("groups file '" + path + "' is empty");
  const auto& header = records.front().fields;
  // The file column as groups files name it (filename) or as manifests do (path); likewise the group.
  auto column = [&](const std::string& name, const std::string& manifest_name) -> size_t {
    for (const auto& n : {name, manifest_name}) {
      auto it = std::find(header.begin(), header.end(), n);
      if (it != header.end()) return static_cast<size_t>(it - header.begin());
    }
    throw Error("groups file '" + path + "' has no '" + name + "' or '" + manifest_name +
                "' column (expected filename,label,group_id or, as in a manifest, path,label,group)");
  };
  const size_t file_col = column("filename", "path"), group_col = column("group_id", "group");
  std::unordered_map<std::string, std::string> groups;
  for (size_t r = 1; r < records.size(); ++r) {
    const auto& fields = records[r].fields;
    if (fields.size() <= std::max(file_col, group_col) || fields[group_col].empty())
      throw Error("groups file '" + path + "', line " + std::to_string(records[r].line) +
                  ": a file name and a group are needed on every row");
    groups[std::filesystem::path(fields[file_col]).filename().string()] = fields[group_col];
  }
  return groups;
}

GroupAssignment assign_groups(const ScanResult& scan, const std::unordered_map<std::string, std::string>* csv) {
  GroupAssignment result;
  result.group_of_image.reserve(scan.images.size());
  for (const auto& image : scan.images) {
    const std::string name = std::filesystem::path(image.path).filename().string();
    if (csv) {
      auto it = csv->find(name);
      if (it != csv->end()) {
        result.group_of_image.push_back(it->second);
        continue;
      }
      ++result.missing;
    }
    result.group_of_image.push_back("image:" + image.path);
  }
  return result;
}

namespace {

// Each group's members, and the groups of each class (a group belongs to its majority class), in
// first-seen order: deterministic.
struct GroupsByClass {
  std::vector<std::vector<int64_t>> members;
  std::map<int64_t, std::vector<size_t>> groups_of_class;
  std::map<int64_t, int64_t> images_of_class;
};

GroupsByClass groups_by_class(const std::vector<int64_t>& labels, const std::vector<std::string>& groups) {
  GroupsByClass out;
  std::map<std::string, size_t> group_index;
  for (size_t i = 0; i < groups.size(); ++i) {
    auto [it, added] = group_index.emplace(groups[i], out.members.size());
    if (added) out.members.emplace_back();
    out.members[it->second].push_back(static_cast<int64_t>(i));
  }
  for (size_t g = 0; g < out.members.size(); ++g) {
    std::map<int64_t, int64_t> votes;
    for (int64_t i : out.members[g]) ++votes[labels[i]];
    const int64_t majority = std::max_element(votes.begin(), votes.end(), [](auto& a, auto& b) {
                               return a.second < b.second;
                             })->first;
    out.groups_of_class[majority].push_back(g);
    out.images_of_class[majority] += static_cast<int64_t>(out.members[g].size());
  }
  return out;
}

// Fisher-Yates with our own draw, seeded per class: portable.
void shuffle_groups(std::vector<size_t>& class_groups, uint64_t seed, int64_t cls) {
  std::mt19937_64 rng(seed * 1000003ull + static_cast<uint64_t>(cls));
  for (size_t i = class_groups.size(); i > 1; --i) std::swap(class_groups[i - 1], class_groups[rng() % i]);
}

}  // namespace

std::vector<std::vector<int64_t>> grouped_folds(const std::vector<int64_t>& labels, const std::vector<std::string>& groups,
                                                int folds, uint64_t seed) {
  GroupsByClass by = groups_by_class(labels, groups);
  std::vector<std::vector<int64_t>> fold(static_cast<size_t>(folds));
  std::vector<int64_t> fold_images(static_cast<size_t>(folds), 0);
  for (auto& [cls, class_groups] : by.groups_of_class) {
    shuffle_groups(class_groups, seed, cls);
    // Largest groups first, each to the fold with the fewest images of this class so far (then
    // the fewest images, then the first): folds as even as whole groups allow.
    std::stable_sort(class_groups.begin(), class_groups.end(),
                     [&](size_t a, size_t b) { return by.members[a].size() > by.members[b].size(); });
    std::vector<int64_t> of_class(static_cast<size_t>(folds), 0);
    for (const size_t g : class_groups) {
      size_t best = 0;
      for (size_t f = 1; f < fold.size(); ++f)
        if (std::make_pair(of_class[f], fold_images[f]) < std::make_pair(of_class[best], fold_images[best])) best = f;
      const auto n = static_cast<int64_t>(by.members[g].size());
      of_class[best] += n;
      fold_images[best] += n;
      fold[best].insert(fold[best].end(), by.members[g].begin(), by.members[g].end());
    }
  }
  for (auto& f : fold) std::sort(f.begin(), f.end());
  return fold;
}

Split split_by_group(const std::vector<int64_t>& labels, const std::vector<std::string>& groups,
                     double val_fraction, uint64_t seed) {
  GroupsByClass by = groups_by_class(labels, groups);
  const auto& members = by.members;
  Split split;
  std::vector<bool> in_val(groups.size(), false);
  for (auto& [cls, class_groups] : by.groups_of_class) {
    shuffle_groups(class_groups, seed, cls);
    const double want = val_fraction * static_cast<double>(by.images_of_class[cls]);
    int64_t taken = 0;
    // The last group always stays in training: a class must be learnable to be validated.
    for (size_t k = 0; k + 1 < class_groups.size(); ++k) {
      const size_t g = class_groups[k];
      if (taken >= want || (taken > 0 && taken + static_cast<double>(members[g].size()) / 2 > want)) break;
      for (int64_t i : members[g]) in_val[i] = true;
      taken += static_cast<int64_t>(members[g].size());
    }
  }
  for (size_t i = 0; i < groups.size(); ++i) (in_val[i] ? split.val : split.train).push_back(static_cast<int64_t>(i));
  return split;
}

}  // namespace histotrain
