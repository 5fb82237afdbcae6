// 95% confidence intervals by bootstrap over source groups. Tiles cut from one source image are
// not independent (LC25000's are near-copies of each other): resampling images would pretend the
// validation set holds as many independent cases as tiles and give intervals far too narrow. So
// whole groups are drawn with replacement, and each resample's metrics are computed from its
// images; the interval is the 2.5th to 97.5th percentile over the resamples.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/scored_metrics.h"

namespace histotrain {

struct BootstrapOptions {
  int resamples = 2000;  // 0: no intervals
  uint64_t seed = 0;
};

// {"level": 0.95, "resamples", "seed", "unit": "source group" | "image", "units",
//  "accuracy": [low, high], "balanced_accuracy", "macro_f1", "macro_auc", "class_auc": one
//  interval per class, in class order (null where the class's AUC is undefined)}. The unit is "image"
// when every image is its own group (none were known): the note says the interval is per image
// then. Null when resamples is 0 or there are no images.
nlohmann::json bootstrap_intervals(const ScoredImages& s, const BootstrapOptions& options);

// One resample: each image's weight is how many times its group was drawn (groups drawn with
// replacement, as many draws as there are groups).
ImageWeights draw_resample(const ScoredImages& s, std::mt19937_64& rng);

// [2.5th, 97.5th percentile] of the samples that are not NaN; null when none is.
nlohmann::json percentile_interval(std::vector<double>& samples);

// The q-quantile (0..1) of `values` with linear interpolation between order statistics (numpy's
// default); sorts `values`.
double quantile(std::vector<double>& values, double q);

}  // namespace histotrain
