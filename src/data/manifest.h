// A dataset listed by a CSV instead of class folders: columns `path,label` and, optionally,
// `group` (source group: splits keep it on one side) and `split` (`train`, `val` or `test`: the
// dataset's own partition). Paths are relative to the CSV's folder and may not leave it; unknown
// columns are ignored. Bad rows are an Error that lists them by line number.
#pragma once
#include <string>

#include "data/scan.h"

namespace histotrain {

// The manifest's images as a scan: root is the manifest file itself (its tile cache is its own),
// classes are the labels (sorted), and each image carries its group and split when the manifest
// has those columns.
ScanResult read_manifest(const std::string& csv_path);

// The values a `split` column may hold, and what each means to `train` and `eval`.
bool is_known_split(const std::string& name);  // train, val, test

}  // namespace histotrain
