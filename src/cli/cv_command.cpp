// histotrain cv: grouped cross-validation (train/cross_validation.h), and --compare of two.
#include <cstdio>
#include <cstdlib>

#include "cli/commands.h"
#include "train/cross_validation.h"
#include "train/recipes.h"
#include "util/errors.h"
#include "util/files.h"
#include "util/json_text.h"

namespace histotrain {

namespace {

struct CvOptions {
  int folds = 5;
  std::vector<std::string> compare;
  bool json = false, keep_models = false;
};

int run_compare(const CvOptions& o) {
  const nlohmann::json comparison = compare_cross_validations(o.compare[0], o.compare[1]);
  if (o.json)
    std::printf("%s\n", json_text(comparison, 2).c_str());
  else
    std::printf("%s", comparison_markdown(comparison).c_str());
  return 0;
}

}  // namespace

Command add_cv_command(CLI::App& root) {
  auto parsed = std::make_shared<TrainConfig>();
  auto o = std::make_shared<CvOptions>();
  CLI::App* app = root.add_subcommand(
      "cv", "Grouped cross-validation: one run per fold of source groups, the metrics' mean, sd and 95% CI; "
            "--compare two such runs");
  auto flags = std::make_shared<TrainFlags>(add_train_flags(app, *parsed));
  app->add_option("--folds", o->folds, "Folds of whole source groups, stratified by class")->capture_default_str();
  app->add_option("--compare", o->compare,
                  "DIR_A DIR_B: two finished cv runs over the same folds; the paired difference of each metric")
      ->expected(2);
  app->add_flag("--json", o->json, "Print the report as JSON");
  app->add_flag("--keep-models", o->keep_models,
                "Keep each fold's weights and training state (by default a finished fold keeps its figures only)");
  add_max_image_pixels_flag(app);
  return {app, [parsed, flags, o] {
            if (!o->compare.empty()) return run_compare(*o);
            if (parsed->data.root.empty() && parsed->data.manifest.empty())
              throw UsageError("cv needs --data or --manifest (or --compare DIR_A DIR_B)");
            const nlohmann::json given = flags->given(*parsed);
            if (!given.contains("out")) throw UsageError("cv needs --out DIR: the folder of its folds and runs");
            const char* world = std::getenv("WORLD_SIZE");
            if (world && std::string(world) != "1")
              throw UsageError("cv runs its folds one after another in one process: start it without launch/torchrun");
            const TrainConfig base = with_recipe(*parsed, given);
            const CrossValidationOutcome outcome = cross_validate(base, o->folds, base.job.out, o->keep_models);
            if (outcome.stopped_by != 0) return 128 + outcome.stopped_by;
            if (outcome.report.is_null()) return 0;  // not rank 0
            if (o->json)
              std::printf("%s\n", json_text(outcome.report, 2).c_str());
            else
              std::printf("%s", cv_markdown(outcome.report).c_str());
            return 0;
          }};
}

}  // namespace histotrain
