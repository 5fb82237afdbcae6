// Split audits: how many test tiles have a near-copy (same source image) among the training tiles.
// A random image-level split of LC25000 leaks most of its test set this way, and the accuracy it
// reports is then partly memory; a split by source group leaks (close to) nothing.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "leakage/near_copies.h"

namespace histotrain {

// Images named by a folder (class folders of images, as `train --data` takes) or by a list file
// (one image path per line, as `train` writes train_images.txt / val_images.txt). An image's class
// is the name of the folder holding it.
struct ImageList {
  std::vector<std::string> paths;
  std::vector<std::string> classes;
};
ImageList read_image_list(const std::string& folder_or_list);

struct LeakExample {
  std::string test, train;
  float score = 0;
};

struct AuditReport {
  int64_t test_images = 0, train_images = 0, leaked = 0;
  double threshold = 0;
  std::map<std::string, std::pair<int64_t, int64_t>> per_class;  // class -> (test images, leaked)
  std::vector<LeakExample> examples;                              // the strongest matches first
  double seconds = 0;

  double leaked_fraction() const { return test_images ? static_cast<double>(leaked) / test_images : 0.0; }
};

// Audits test against train; `quiet` hides the progress of decoding.
AuditReport audit_split(const ImageList& train, const ImageList& test, const NearCopyOptions& options, int threads,
                        bool quiet, int max_examples = 5);

// The same from signatures already computed: rows `train_rows` and `test_rows` of `signatures`.
AuditReport audit_split(const TileSignatures& signatures, const std::vector<int64_t>& labels,
                        const ImageList& images, const std::vector<int64_t>& train_rows,
                        const std::vector<int64_t>& test_rows, const NearCopyOptions& options, int max_examples = 5);

std::string format_audit(const AuditReport& report);
nlohmann::json audit_json(const AuditReport& report);

}  // namespace histotrain
