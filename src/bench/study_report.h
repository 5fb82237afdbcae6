// A study's report, from its results alone: results.csv, report.md (tables of time, images/s,
// speedup S(p) = T(1)/T(p), efficiency E(p) = S(p)/p, accuracy, time to accuracy, decoding) and
// PNG plots drawn by gnuplot when it is installed (the report is complete without them).
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace histotrain {

// Adds to every training row the speedup and efficiency against its program's "serial" run (of
// the same study) and the ratio to the Python peer's run of the same configuration.
nlohmann::json derive_figures(const nlohmann::json& results);

// Several studies (e.g. a laptop's and a GPU node's) as one: rows are labelled with their study.
nlohmann::json merge_studies(const std::vector<nlohmann::json>& studies, const std::vector<std::string>& labels);

// Writes results.csv, report.md and plots/ into `folder`; returns whether the plots were drawn.
bool write_report(const nlohmann::json& results, const std::filesystem::path& folder);

}  // namespace histotrain
