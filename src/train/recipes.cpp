#include "train/recipes.h"

#include <functional>
#include <vector>

#include "train/config_fields.h"
#include "util/errors.h"

namespace histotrain {

namespace {

// One flag a recipe sets: its key in the field table (config_fields.h), and the typed setting.
struct RecipeFlag {
  const char* key;
  std::function<void(TrainConfig&)> set;
};

// cpu-fast: time to accuracy on a few CPU cores, for budgets of 15 s to 2 min of training. Each
// piece was kept only for a clear gain on lc25000-dev's grouped splits; the runs, their machines
// and their figures are in docs/results.md ("cpu-fast, piece by piece").
const std::vector<RecipeFlag>& cpu_fast() {
  static const std::vector<RecipeFlag> flags = {
      // One block per stage: half ResNet-18's compute per image, so twice the steps in a budget.
      {"arch", [](TrainConfig& c) { c.model.arch = ArchName{"resnet10"}; }},
      // Where bf16 is fast a minute holds several epochs, and the extra steps buy resolution;
      // on a CPU without fast bf16 a smaller side did better (docs/results.md).
      {"image_size", [](TrainConfig& c) { c.data.image_size = 64; }},
      // The default warm-up is cut at a quarter of the budget: short budgets would spend that
      // quarter warming up.
      {"warmup_epochs", [](TrainConfig& c) { c.optim.warmup_epochs = 0.1; }},
      // The precision measured fastest on the machine, once (cached): fp32 where bf16 is slow.
      {"amp", [](TrainConfig& c) { c.precision.amp = AmpMode::automatic; }},
  };
  return flags;
}

const std::vector<RecipeFlag>& recipe_flags(Recipe recipe) {
  static const std::vector<RecipeFlag> none;
  return recipe == Recipe::cpu_fast ? cpu_fast() : none;
}

// The flag a key is set with ("--image-size"), from the field table.
std::string flag_of(const std::string& key) {
  std::string flag;
  const TrainConfig defaults;
  for_each_field(defaults, [&](const FieldInfo& info, const auto&) {
    if (key == info.key) flag = std::string(info.flag).substr(0, std::string(info.flag).find(','));
  });
  return flag;
}

}  // namespace

TrainConfig with_recipe(const TrainConfig& parsed, const nlohmann::json& given) {
  if (!parsed.job.resume.empty() && given.contains("recipe"))
    throw UsageError("--recipe starts a run; a resumed run keeps the flags it was saved with");
  if (parsed.job.recipe == Recipe::none || !parsed.job.resume.empty()) return parsed;
  TrainConfig config = parsed;
  for (const RecipeFlag& flag : recipe_flags(parsed.job.recipe))
    if (!given.contains(flag.key)) flag.set(config);
  return config;
}

std::string recipe_line(const TrainConfig& config) {
  if (config.job.recipe == Recipe::none) return "";
  const nlohmann::json j = to_json(config);
  std::string line = std::string("recipe ") + spelling(config.job.recipe) + ":";
  for (const RecipeFlag& flag : recipe_flags(config.job.recipe)) {
    const nlohmann::json& value = j.at(flag.key);
    line += " " + flag_of(flag.key) + " " + (value.is_string() ? value.get<std::string>() : value.dump());
  }
  return line + " (flags given on the command line win)";
}

}  // namespace histotrain
