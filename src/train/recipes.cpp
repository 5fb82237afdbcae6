#include "train/recipes.h"

#include <vector>

#include "train/config_fields.h"
#include "util/errors.h"

namespace histotrain {

namespace {

struct RecipeFlag {
  const char* key;    // in the saved form (config_fields.h)
  const char* value;  // as JSON
};

// cpu-fast: time to accuracy on a few CPU cores, for budgets of 15 s to 2 min of training.
// Measured with --time-budget 60 on lc25000-dev's grouped splits (seeds 0 and 1), 2-core AMD
// EPYC, LibTorch 1.13 with OpenBLAS, against ResNet-18 at 64 px with the default flags (0.858 on
// seed 0); docs/results.md, "cpu-fast, piece by piece", has every run. Seed-to-seed spread is
// about 1 point, so a piece is kept only for a clear gain.
const std::vector<RecipeFlag>& cpu_fast() {
  static const std::vector<RecipeFlag> flags = {
      // ResNet-10 (one block per stage): half the compute per image, so 345-356 steps in 60 s
      // against 180-186 for ResNet-18, with the other flags below. 0.926 / 0.883 / 0.930 on
      // seeds 0-2, against 0.894 / 0.877 / 0.896 for ResNet-18 (+2.4 points in the mean).
      {"arch", "\"resnet10\""},
      // 64 px. Measured on a 2-core EPYC with AVX-512 BF16 (2026-12-01), where --amp auto picks
      // bf16 + channels-last at 980 img/s (fp32 153): 60 s hold 1,400-1,500 steps, about 6
      // epochs, and 64 px reaches 0.932 / 0.936 / 0.957 (seeds 0-2) against 0.910 at 48 px
      // (seed 1), 0.937 / 0.929 / 0.941 at 72 px and 0.929 at 80 px (seed 1).
      // On an AVX2-only CPU (fp32 at ~110 img/s, 2026-11-30) 48 px was best for ResNet-18:
      // 0.889 / 0.892 (seeds 0, 1) against 0.858 at 64 px; 32 px 0.876 / 0.891.
      {"image_size", "64"},
      // A tenth of an epoch of warm-up. At 60 s it measured the same as the default (0.871 both,
      // 32 px, seed 0), which is cut at a quarter of the budget; shorter budgets with the
      // default would spend that quarter warming up.
      {"warmup_epochs", "0.1"},
      // The precision measured fastest here, once per machine (cached): fp32 with the tuned
      // convolution gradients on AVX2 CPUs (bf16 ran 17x slower), bf16 where AVX-512 BF16 or AMX
      // make it faster.
      {"amp", "\"auto\""},
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
  nlohmann::json j = to_json(parsed);
  for (const RecipeFlag& flag : recipe_flags(parsed.job.recipe))
    if (!given.contains(flag.key)) j[flag.key] = nlohmann::json::parse(flag.value);
  TrainConfig config = config_from_json(j);
  config.trust_checkpoint = parsed.trust_checkpoint;
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
