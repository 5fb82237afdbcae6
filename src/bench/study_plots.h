// The study report's plots (speedup, efficiency, images/s, decoding, curves, a confusion matrix),
// drawn by gnuplot where it is installed.
#pragma once
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace histotrain {

// Writes plots/ under `folder` and appends the images (or why there are none) to `markdown`;
// false when no plots could be drawn.
bool draw_plots(const nlohmann::json& results, const std::filesystem::path& folder, std::string& markdown);

}  // namespace histotrain
