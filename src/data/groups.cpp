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
  const std::vector<CsvRecord> records = parse_csv(read_regular_file(path, uint64_t{1} << 30), "groups file '" + path + "'");
  if (records.empty()) throw Error("groups file '" + path + "' is empty");
  const auto& header = records.front().fields;
  auto column = [&](const std::string& name) -> size_t {
    auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end())
      throw Error("groups file '" + path + "' has no '" + name + "' column (expected filename,label,group_id)");
    return static_cast<size_t>(it - header.begin());
  };
  const size_t file_col = column("filename"), group_col = column("group_id");
  std::unordered_map<std::string, std::string> groups;
  for (size_t r = 1; r < records.size(); ++r) {
    const auto& fields = records[r].fields;
    if (fields.size() <= std::max(file_col, group_col) || fields[group_col].empty())
      throw Error("groups file '" + path + "', line " + std::to_string(records[r].line) +
                  ": expected filename,label,group_id");
    groups[fields[file_col]] = fields[group_col];
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

Split split_by_group(const std::vector<int64_t>& labels, const std::vector<std::string>& groups,
                     double val_fraction, uint64_t seed) {
  // Members and majority class of each group, in first-seen order (deterministic).
  std::map<std::string, size_t> group_index;
  std::vector<std::vector<int64_t>> members;
  for (size_t i = 0; i < groups.size(); ++i) {
    auto [it, added] = group_index.emplace(groups[i], members.size());
    if (added) members.emplace_back();
    members[it->second].push_back(static_cast<int64_t>(i));
  }
  std::map<int64_t, std::vector<size_t>> groups_of_class;
  std::map<int64_t, int64_t> images_of_class;
  for (size_t g = 0; g < members.size(); ++g) {
    std::map<int64_t, int64_t> votes;
    for (int64_t i : members[g]) ++votes[labels[i]];
    const int64_t majority = std::max_element(votes.begin(), votes.end(), [](auto& a, auto& b) {
                               return a.second < b.second;
                             })->first;
    groups_of_class[majority].push_back(g);
    images_of_class[majority] += static_cast<int64_t>(members[g].size());
  }

  Split split;
  std::vector<bool> in_val(groups.size(), false);
  for (auto& [cls, class_groups] : groups_of_class) {
    std::mt19937_64 rng(seed * 1000003ull + static_cast<uint64_t>(cls));
    for (size_t i = class_groups.size(); i > 1; --i)  // Fisher-Yates with our own draw: portable
      std::swap(class_groups[i - 1], class_groups[rng() % i]);
    const double want = val_fraction * static_cast<double>(images_of_class[cls]);
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
