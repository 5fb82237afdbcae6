// A dataset listed by a CSV instead of class folders: columns `path,label` and, optionally,
// `group` (source group or patient: splits keep it on one side) and `split` (`train`, `val` or
// `test`: the dataset's own partition). A CSV with other column names (filename, diagnosis,
// patient_id) is read with --columns path=filename,label=diagnosis,group=patient_id. Relative
// paths are relative to --root (default: the CSV's folder) and may not leave it, links included;
// absolute paths are taken as they are (the manifest is the user's own list). Unknown columns
// are ignored, but for `mpp` (microns per pixel, as `histotrain tile` writes): when every row
// gives the same, the trained model remembers the scale its tiles were seen at, and slide
// prediction reads at it. Bad rows are an Error that lists them by line number.
#pragma once
#include <string>

#include "data/scan.h"

namespace histotrain {

// Which CSV column holds each of the manifest's fields.
struct ManifestColumns {
  std::string path = "path", label = "label", group = "group", split = "split";
};

// "path=filename,label=diagnosis,group=patient_id" (any of the four, in any order; the others
// keep their names). Throws UsageError naming --columns for anything else.
ManifestColumns parse_manifest_columns(const std::string& text);

struct ManifestOptions {
  ManifestColumns columns;
  std::string root;  // relative paths are relative to this folder ("": the CSV's folder)
};

// The manifest's images as a scan: root is the manifest file itself (its tile cache is its own),
// classes are the labels (sorted), and each image carries its group and split when the manifest
// has those columns.
ScanResult read_manifest(const std::string& csv_path, const ManifestOptions& options = {});

// The values a `split` column may hold, and what each means to `train` and `eval`.
bool is_known_split(const std::string& name);  // train, val, test

}  // namespace histotrain
