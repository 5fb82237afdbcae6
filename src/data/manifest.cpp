#include "data/manifest.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <unordered_set>

#include "util/csv.h"
#include "util/errors.h"
#include "util/files.h"
#include "util/json_text.h"

namespace histotrain {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kMaxManifestBytes = uint64_t{1} << 30;
constexpr size_t kBadRowsShown = 10;

struct Columns {
  size_t path = 0, label = 0;
  int group = -1, split = -1, mpp = -1;  // -1: the column is absent
};

std::string joined(const std::vector<std::string>& names) {
  std::string text;
  for (const auto& n : names) text += (text.empty() ? "" : ",") + n;
  return text;
}

Columns find_columns(const std::vector<std::string>& header, const ManifestColumns& names, const std::string& source) {
  auto find = [&](const std::string& name) -> int {
    const auto it = std::find(header.begin(), header.end(), name);
    return it == header.end() ? -1 : static_cast<int>(it - header.begin());
  };
  const int path = find(names.path), label = find(names.label);
  if (path < 0 || label < 0)
    throw Error(source + " needs a header with '" + names.path + "' and '" + names.label +
                "' columns (and optionally '" + names.group + "' and '" + names.split + "'); found: " + joined(header) +
                ". Other names are mapped with --columns, e.g. --columns path=filename,label=diagnosis,group=patient_id");
  return {static_cast<size_t>(path), static_cast<size_t>(label), find(names.group), find(names.split), find("mpp")};
}

// Whether `path`, its symbolic links followed, lies inside `real_folder` (itself resolved).
bool resolves_inside(const fs::path& path, const fs::path& real_folder) {
  std::error_code ec;
  const fs::path real = fs::weakly_canonical(path, ec);
  if (ec) return false;
  const auto mismatch = std::mismatch(real_folder.begin(), real_folder.end(), real.begin(), real.end());
  return mismatch.first == real_folder.end();
}

// The file a row names, or why it cannot be one. An absolute path is the user's own choice; a
// relative one must stay inside the root folder, its symbolic links followed, so that a list
// made for one folder cannot reach files elsewhere by '..' or by a link.
std::string resolve(const fs::path& folder, const fs::path& real_folder, const std::string& given_text, fs::path& out) {
  if (given_text.empty()) return "empty path";
  if (given_text.find('\0') != std::string::npos) return "a path with a NUL byte";
  const fs::path given(given_text);
  if (given.is_absolute()) {
    out = given.lexically_normal();
    return "";
  }
  const fs::path normal = given.lexically_normal();
  if (normal.empty() || *normal.begin() == "..")
    return "a path outside the root folder (give --root, or an absolute path)";
  out = folder / normal;
  if (!resolves_inside(out, real_folder)) return "a path whose links lead outside the root folder";
  return "";
}

// Fills size and time from the file, or says why it is not one.
std::string stat_image(ImageFile& image) {
  struct stat info {};
  if (::stat(image.path.c_str(), &info) != 0) return "no such file: " + image.path;
  if (!S_ISREG(info.st_mode)) return "not a regular file";
  image.bytes = static_cast<uint64_t>(info.st_size);
  image.mtime_ns = static_cast<int64_t>(info.st_mtim.tv_sec) * 1'000'000'000 + info.st_mtim.tv_nsec;
  return "";
}

std::string field(const CsvRecord& record, int column) {
  return column >= 0 && static_cast<size_t>(column) < record.fields.size() ? record.fields[column] : "";
}

// A manifest's mpp field: empty (unknown) or a number in (0, 100].
bool parse_mpp(const std::string& text, double& mpp) {
  mpp = 0;
  if (text.empty()) return true;
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !(value > 0 && value <= 100)) return false;
  mpp = value;
  return true;
}

// The microns per pixel every image shares, or 0 when any is unknown or they differ (by more
// than rounding in the CSV).
double shared_mpp(const std::vector<ImageFile>& images) {
  if (images.empty() || images.front().mpp <= 0) return 0;
  const double first = images.front().mpp;
  for (const auto& image : images)
    if (!(std::abs(image.mpp - first) <= 1e-4 * first)) return 0;
  return first;
}

// One row as an image, or the reason it is a bad row.
std::string image_of_row(const CsvRecord& row, const Columns& columns, const fs::path& folder,
                         const fs::path& real_folder, ImageFile& image) {
  if (row.fields.size() <= std::max(columns.path, columns.label)) return "fewer fields than the header";
  const std::string label = row.fields[columns.label];
  if (label.empty()) return "empty label";
  if (!is_utf8(label)) return "a label that is not UTF-8 text";
  fs::path file;
  if (std::string why = resolve(folder, real_folder, row.fields[columns.path], file); !why.empty()) return why;
  image.path = file.string();
  image.class_name = label;
  image.group = field(row, columns.group);
  image.split = field(row, columns.split);
  if (columns.split >= 0 && !is_known_split(image.split))
    return "split '" + image.split + "' (expected train, val or test)";
  if (columns.mpp >= 0 && !parse_mpp(field(row, columns.mpp), image.mpp))
    return "mpp '" + field(row, columns.mpp) + "' (expected microns per pixel, above 0 and at most 100)";
  return stat_image(image);
}

}  // namespace

bool is_known_split(const std::string& name) { return name == "train" || name == "val" || name == "test"; }

ManifestColumns parse_manifest_columns(const std::string& text) {
  ManifestColumns columns;
  std::string rest = text;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string pair = rest.substr(0, comma);
    rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
    const size_t eq = pair.find('=');
    const std::string field = pair.substr(0, eq), column = eq == std::string::npos ? "" : pair.substr(eq + 1);
    std::string* target = field == "path"    ? &columns.path
                          : field == "label" ? &columns.label
                          : field == "group" ? &columns.group
                          : field == "split" ? &columns.split
                                             : nullptr;
    if (!target || column.empty())
      throw UsageError("--columns takes FIELD=COLUMN pairs, FIELD one of path, label, group, split (e.g. "
                       "path=filename,label=diagnosis,group=patient_id); got '" + pair + "'");
    *target = column;
  }
  return columns;
}

ScanResult read_manifest(const std::string& csv_path, const ManifestOptions& options) {
  const std::string source = "manifest '" + csv_path + "'";
  const std::vector<CsvRecord> records =
      parse_csv(csv_text_for_reading(read_regular_file(csv_path, kMaxManifestBytes), source), source);
  if (records.empty()) throw Error(source + " is empty");
  const Columns columns = find_columns(records.front().fields, options.columns, source);
  const fs::path folder = options.root.empty() ? fs::absolute(csv_path).lexically_normal().parent_path()
                                               : fs::absolute(options.root).lexically_normal();
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) throw Error("--root '" + options.root + "' is not a folder");
  const fs::path real_folder = fs::canonical(folder);

  ScanResult scan;
  scan.root = fs::absolute(csv_path).lexically_normal().string();
  scan.from_manifest = true;
  std::vector<std::string> bad;
  size_t bad_count = 0;
  std::unordered_set<std::string> seen;
  for (size_t r = 1; r < records.size(); ++r) {
    ImageFile image;
    std::string why = image_of_row(records[r], columns, folder, real_folder, image);
    if (why.empty() && !seen.insert(image.path).second) why = "the same file as an earlier row";
    if (why.empty()) {
      scan.images.push_back(std::move(image));
      continue;
    }
    if (++bad_count <= kBadRowsShown) bad.push_back("line " + std::to_string(records[r].line) + ": " + why);
  }
  if (bad_count) {
    std::string text = source + " has " + std::to_string(bad_count) + " bad row(s); fix or remove them:";
    for (const auto& line : bad) text += "\n  " + line;
    if (bad_count > bad.size()) text += "\n  ...";
    throw Error(text);
  }
  if (scan.images.empty()) throw Error(source + " lists no images");
  std::set<std::string> classes;
  for (const auto& image : scan.images) classes.insert(image.class_name);
  scan.classes.assign(classes.begin(), classes.end());
  scan.tile_mpp = shared_mpp(scan.images);
  return scan;
}

}  // namespace histotrain
