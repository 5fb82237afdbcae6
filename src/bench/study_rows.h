// Reading the rows of a study's results.json, for the report and its plots.
#pragma once
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

namespace histotrain::study_rows {

inline std::string fixed(double v, int digits) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", digits, v);
  return text;
}

inline bool ok(const nlohmann::json& row) { return row.value("status", "") == "ok"; }

inline std::string study_of(const nlohmann::json& row) { return row.value("study", ""); }

// "study: config", or the configuration's name alone in a single study.
inline std::string label(const nlohmann::json& r) {
  const std::string study = study_of(r);
  return (study.empty() ? "" : study + ": ") + r.value("config", "");
}

}  // namespace histotrain::study_rows
