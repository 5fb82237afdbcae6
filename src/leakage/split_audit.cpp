#include "leakage/split_audit.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/scan.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/files.h"

namespace histotrain {

namespace fs = std::filesystem;

namespace {

ImageList list_from_file(const std::string& path) {
  ImageList list;
  for (const std::string& line : read_list_file(path)) {
    list.paths.push_back(line);
    list.classes.push_back(fs::path(line).parent_path().filename().string());
  }
  if (list.paths.empty()) throw Error("image list '" + path + "' names no image");
  return list;
}

// Class indices over the union of both lists' class names.
std::vector<int64_t> labels_of(const std::vector<std::string>& classes) {
  std::vector<std::string> names = classes;
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  std::vector<int64_t> labels;
  for (const auto& c : classes)
    labels.push_back(std::lower_bound(names.begin(), names.end(), c) - names.begin());
  return labels;
}

std::vector<int64_t> range(int64_t from, int64_t to) {
  std::vector<int64_t> r;
  for (int64_t i = from; i < to; ++i) r.push_back(i);
  return r;
}

std::string percent(int64_t part, int64_t whole) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f%%", whole ? 100.0 * part / whole : 0.0);
  return text;
}

}  // namespace

ImageList read_image_list(const std::string& folder_or_list) {
  if (!fs::is_directory(folder_or_list)) return list_from_file(folder_or_list);
  const ScanResult scan = scan_image_folder(folder_or_list);
  ImageList list;
  for (const auto& image : scan.images) {
    list.paths.push_back(image.path);
    list.classes.push_back(image.class_name);
  }
  return list;
}

AuditReport audit_split(const TileSignatures& signatures, const std::vector<int64_t>& labels,
                        const ImageList& images, const std::vector<int64_t>& train_rows,
                        const std::vector<int64_t>& test_rows, const NearCopyOptions& options, int max_examples) {
  const auto start = std::chrono::steady_clock::now();
  auto labels_at = [&](const std::vector<int64_t>& rows) {
    std::vector<int64_t> out;
    for (int64_t row : rows) out.push_back(labels[row]);
    return out;
  };
  const auto nearest = nearest_copies(select_rows(signatures, test_rows), labels_at(test_rows),
                                      select_rows(signatures, train_rows), labels_at(train_rows), options);
  AuditReport report;
  report.test_images = static_cast<int64_t>(test_rows.size());
  report.train_images = static_cast<int64_t>(train_rows.size());
  report.threshold = options.threshold;
  for (size_t q = 0; q < test_rows.size(); ++q) {
    const int64_t row = test_rows[q];
    auto& [count, leaked] = report.per_class[images.classes[row]];
    ++count;
    if (nearest[q].match < 0 || nearest[q].score < options.threshold) continue;
    ++leaked;
    ++report.leaked;
    report.examples.push_back({images.paths[row], images.paths[train_rows[nearest[q].match]], nearest[q].score});
  }
  std::sort(report.examples.begin(), report.examples.end(),
            [](const LeakExample& a, const LeakExample& b) { return a.score > b.score; });
  if (static_cast<int>(report.examples.size()) > max_examples) report.examples.resize(std::max(0, max_examples));
  report.seconds = seconds_since(start);
  return report;
}

AuditReport audit_split(const ImageList& train, const ImageList& test, const NearCopyOptions& options, int threads,
                        bool quiet, int max_examples) {
  const auto start = std::chrono::steady_clock::now();
  ImageList all = train;
  all.paths.insert(all.paths.end(), test.paths.begin(), test.paths.end());
  all.classes.insert(all.classes.end(), test.classes.begin(), test.classes.end());
  const TileSignatures signatures = compute_signatures(all.paths, threads, quiet);
  if (!signatures.errors.empty())
    std::fprintf(stderr, "warning: %zu image(s) could not be decoded and are not audited, e.g. %s\n",
                 signatures.errors.size(), signatures.errors.front().c_str());
  const auto n_train = static_cast<int64_t>(train.paths.size());
  AuditReport report = audit_split(signatures, labels_of(all.classes), all, range(0, n_train),
                                   range(n_train, n_train + static_cast<int64_t>(test.paths.size())), options,
                                   max_examples);
  report.seconds = seconds_since(start);
  return report;
}

std::string format_audit(const AuditReport& report) {
  std::ostringstream out;
  out << report.leaked << " of " << report.test_images << " test images (" << percent(report.leaked, report.test_images)
      << ") have a near-copy among the " << report.train_images << " training images (match score >= "
      << report.threshold << ")\n";
  for (const auto& [cls, counts] : report.per_class)
    out << "  " << cls << ": " << counts.second << " of " << counts.first << " (" << percent(counts.second, counts.first)
        << ")\n";
  if (!report.examples.empty()) out << "strongest matches (test <- training, score):\n";
  for (const auto& e : report.examples) {
    char score[16];
    std::snprintf(score, sizeof score, "%.3f", e.score);
    out << "  " << e.test << " <- " << e.train << "  " << score << "\n";
  }
  return out.str();
}

nlohmann::json audit_json(const AuditReport& report) {
  nlohmann::json per_class = nlohmann::json::object();
  for (const auto& [cls, counts] : report.per_class)
    per_class[cls] = {{"test_images", counts.first}, {"leaked", counts.second}};
  nlohmann::json examples = nlohmann::json::array();
  for (const auto& e : report.examples) examples.push_back({{"test", e.test}, {"train", e.train}, {"score", e.score}});
  return {{"test_images", report.test_images}, {"train_images", report.train_images}, {"leaked", report.leaked},
          {"leaked_fraction", report.leaked_fraction()}, {"threshold", report.threshold}, {"per_class", per_class},
          {"examples", examples}, {"seconds", report.seconds}};
}

}  // namespace histotrain
