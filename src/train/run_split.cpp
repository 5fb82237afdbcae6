// Which tiles train and which validate: the dataset's own split, a --val-images list, or a split
// by source group (or per image, audited); and the lists of both written into the run.
#include "train/run_split.h"

#include <algorithm>
#include <set>

#include "leakage/split_audit.h"
#include "util/display_text.h"
#include "util/errors.h"
#include "util/files.h"

namespace histotrain {

namespace {

// --val-images: the tiles the list names (by path, or by file name, so a list from another
// machine works) are validation, the rest training. Names that match no tile are reported: a
// list that lost names validates on fewer tiles than it meant to.
Split split_from_list(const TileDataset& data, const std::string& list_file, std::string& unmatched) {
  const std::vector<std::string> lines = read_list_file(list_file);
  std::set<std::string> paths, names;
  for (int64_t i = 0; i < data.size(); ++i) {
    paths.insert(data.path(i));
    names.insert(fs::path(data.path(i)).filename().string());
  }
  std::set<std::string> listed;
  std::vector<std::string> missing;
  for (const std::string& line : lines) {
    const std::string name = fs::path(line).filename().string();
    if (paths.count(line) || names.count(name))
      listed.insert(name);
    else
      missing.push_back(line);
  }
  Split split;
  for (int64_t i = 0; i < data.size(); ++i)
    (listed.count(fs::path(data.path(i)).filename().string()) ? split.val : split.train).push_back(i);
  if (split.val.empty()) throw Error(list_file + " names none of the tiles in " + data.scan.root);
  if (!missing.empty()) {
    unmatched = "warning: " + std::to_string(missing.size()) + " of the " + std::to_string(lines.size()) + " names in " +
                list_file + " match no tile of the data, e.g. '" + printable(missing.front()) + "'";
  }
  return split;
}

// The dataset's own split (a manifest's split column, or --val-data): its test images are left
// out of training and validation both.
Split split_as_given(const TileDataset& data) {
  Split split;
  for (int64_t i = 0; i < data.size(); ++i) {
    if (data.splits[i] == "train") split.train.push_back(i);
    if (data.splits[i] == "val") split.val.push_back(i);
  }
  return split;
}

std::string given_split_origin(const TileDataset& tiles, const TrainConfig& c) {
  if (!c.data.val_data.empty()) return "validation: the images of --val-data " + c.data.val_data;
  const int64_t test = std::count(tiles.splits.begin(), tiles.splits.end(), "test");
  return "as the manifest's split column says" +
         (test ? "; its " + std::to_string(test) + " test images are left out (histotrain eval --manifest takes them)"
               : std::string());
}

}  // namespace

Split make_split(const TileDataset& data, const TrainConfig& c) {
  if (data.has_given_split()) {
    if (!c.data.val_images.empty())
      throw UsageError("--val-images and the dataset's own split column both name the validation set: give one");
    if (c.data.split == DataSplit::random) throw UsageError("the dataset's own split column is the split: drop --split");
    return split_as_given(data);
  }
  if (!c.data.val_images.empty()) {
    std::string unmatched;
    Split split = split_from_list(data, c.data.val_images, unmatched);
    if (!unmatched.empty()) std::fprintf(stderr, "%s\n", unmatched.c_str());
    return split;
  }
  if (c.data.split == DataSplit::group) return split_by_group(data.labels, data.groups, c.data.val_fraction, c.job.seed);
  std::vector<std::string> one_group_per_image;
  for (int64_t i = 0; i < data.size(); ++i) one_group_per_image.push_back("image:" + data.path(i));
  return split_by_group(data.labels, one_group_per_image, c.data.val_fraction, c.job.seed);
}

// A per-image split puts near-copies of one source on both sides, and validation then partly
// measures memory. Measure how much, so the figure is not taken at face value.
nlohmann::json audit_random_split(const TileDataset& d, const Split& split, const TrainConfig& c, const RunWorld& world) {
  ImageList images;
  for (int64_t i = 0; i < d.size(); ++i) {
    images.paths.push_back(d.path(i));
    images.classes.push_back(d.classes[d.labels[i]]);
  }
  const TileSignatures signatures = compute_signatures(images.paths, c.data.workers, c.job.quiet);
  const AuditReport report = audit_split(signatures, d.labels, images, split.train, split.val, NearCopyOptions{}, 3);
  world.log("warning: --split random: " + format_audit(report) +
            "Validation accuracy on this split overstates accuracy on images of new source slides; --split group "
            "(the default) keeps near-copies on one side.");
  return audit_json(report);
}

// train_images.txt and val_images.txt: what `split-audit` and later evaluations take.
void write_split_lists(const TileDataset& tiles, const Split& split, const RunWorld& world) {
  if (!world.is_main()) return;
  auto list = [&](const std::vector<int64_t>& rows) {
    std::vector<std::string> paths;
    for (int64_t i : rows) paths.push_back(tiles.path(i));
    return list_file_text(paths);
  };
  write_file_atomically(world.out / "train_images.txt", list(split.train));
  write_file_atomically(world.out / "val_images.txt", list(split.val));
}

std::string split_origin(const TileDataset& tiles, const TrainConfig& c) {
  if (tiles.has_given_split()) return given_split_origin(tiles, c);
  if (!c.data.val_images.empty()) return "as listed in " + c.data.val_images;
  return (c.data.split == DataSplit::group ? "per source group" : "per image") + std::string(", seed ") +
         std::to_string(c.job.seed);
}

}  // namespace histotrain
