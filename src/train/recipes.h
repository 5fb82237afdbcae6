// Named recipes (--recipe NAME): a set of training flags chosen and measured for one purpose.
// A recipe only fills the flags the command line did not give, and the log prints what it set, so
// a user sees the recipe and can change any part of it. Each entry says what it was measured to
// add (docs/results.md has the runs).
#pragma once
#include <nlohmann/json.hpp>

#include <string>

#include "train/config.h"

namespace histotrain {

// `parsed` with its recipe's flags applied, except those in `given` (the command line's, in the
// saved form: TrainFlags::given). A recipe is expanded once, when a run starts: a resumed run
// keeps the flags it was saved with, and --recipe with --resume is refused.
TrainConfig with_recipe(const TrainConfig& parsed, const nlohmann::json& given);

// "recipe cpu-fast: --image-size 48 --warmup-epochs 0.1 ..." with the values this run has for
// the recipe's flags (the command line's where it gave them); "" without a recipe.
std::string recipe_line(const TrainConfig& config);

}  // namespace histotrain
