// evaluation_report's JSON as a person reads it: the console's tables (`histotrain eval`) and
// report.md (`eval --report`). Both show the per-tile metrics with their intervals, the
// calibration, the per-class table, the labelled confusion matrix, the operating points asked for
// and, where groups gather tiles, the same per group (patient). Class names are shown escaped
// (util/display_text.h) and columns are as wide as the longest name.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace histotrain {

// "0.9312 (0.9010-0.9561)": `metric` of a report section with its interval where it has one;
// "n/a" when the metric is undefined.
std::string metric_with_interval(const nlohmann::json& section, const char* metric);

std::string evaluation_console_text(const nlohmann::json& report);

// report.md without its pictures (evaluation_plots.h adds them).
std::string evaluation_markdown(const nlohmann::json& report);

}  // namespace histotrain
