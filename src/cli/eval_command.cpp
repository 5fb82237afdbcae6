// histotrain eval: a checkpoint's accuracy, balanced accuracy, per-class precision/recall/F1,
// ROC-AUC and average precision, macro-F1, log-loss, calibration and confusion matrix on a folder
// of class folders (any subset of the checkpoint's classes), with 95% confidence intervals by
// bootstrap over source groups; --predictions saves what they are all computed from.
#include <algorithm>
#include <cstdio>
#include <limits>

#include "cli/commands.h"
#include "core/checkpoint.h"
#include "core/evaluate.h"
#include "core/evaluation_plots.h"
#include "core/evaluation_report.h"
#include "core/evaluation_text.h"
#include "core/runtime.h"
#include "data/batches.h"
#include "data/dataset.h"
#include "leakage/group_finder.h"
#include "util/csv.h"
#include "util/files.h"
#include "util/errors.h"
#include "util/json_text.h"
#include "util/machine.h"

namespace histotrain {

namespace fs = std::filesystem;

namespace {

struct EvalOptions {
  std::string checkpoint, data, manifest, manifest_split, manifest_columns, manifest_root, cache_dir, device = "cpu", amp;
  std::string groups, group_by = "group", calibration, predictions, report_dir;
  std::vector<std::string> thresholds, target_sensitivities;
  bool by_group = true;
  int batch_size = 64, threads = 0, workers = 0, bootstrap = 2000;
  uint64_t seed = 0;
  bool json = false, quiet = false, tta = false, trust_checkpoint = false;
};

// The temperature eval applies: the checkpoint's unless --calibration none; asking for one that
// the checkpoint lacks (trained without validation, or by an older histotrain) is an error.
ReportOptions report_options(const EvalOptions& o, const TrainedModel& trained) {
  ReportOptions options;
  options.bootstrap = {o.bootstrap, o.seed};
  if (trained.temperature > 0) {
    options.temperature = trained.temperature;
    options.temperature_from = "the checkpoint (fitted on its validation split)";
  }
  if (o.calibration == "temperature" && trained.temperature <= 0)
    throw Error("--calibration temperature: checkpoint '" + trained.run.string() +
                "' has no temperature (it was trained without a validation split, or by an older histotrain)");
  options.apply_temperature = o.calibration != "none" && trained.temperature > 0;
  options.by_group = o.by_group;
  for (const auto& t : o.thresholds)
    options.operating_points.push_back(
        parse_operating_point(t, OperatingPointRequest::Kind::threshold, "--threshold"));
  for (const auto& t : o.target_sensitivities)
    options.operating_points.push_back(
        parse_operating_point(t, OperatingPointRequest::Kind::target_sensitivity, "--target-sensitivity"));
  for (const auto& point : options.operating_points)
    if (std::find(trained.classes.begin(), trained.classes.end(), point.class_name) == trained.classes.end())
      throw UsageError("operating point for '" + point.class_name + "': the model's classes are " +
                       [&] {
                         std::string names;
                         for (const auto& c : trained.classes) names += (names.empty() ? "" : ", ") + c;
                         return names;
                       }());
  return options;
}

// One row per image: path,label,group,predicted, then each class's probability (named by the
// class), at full float precision, so that other tools recompute every metric exactly.
std::string predictions_csv(const TileDataset& data, const ScoredImages& scored) {
  std::string csv = "path,label,group,predicted";
  for (const auto& c : data.classes) csv += "," + csv_field(c);
  csv += "\n";
  char number[32];
  for (int64_t i = 0; i < scored.size(); ++i) {
    csv += csv_field(data.path(i)) + "," + csv_field(data.classes[data.labels[i]]) + "," + csv_field(data.groups[i]) +
           "," + csv_field(data.classes[scored.predicted(i)]);
    for (int64_t k = 0; k < scored.classes; ++k) {
      std::snprintf(number, sizeof number, ",%.9g", scored.p(i, k));
      csv += number;
    }
    csv += "\n";
  }
  return csv;
}

// The per-group companion of the predictions CSV: one row per group (and label) with its tile
// count, the prediction from the mean probabilities, the majority vote and the mean probabilities.
std::string group_predictions_csv(const GroupScores& g, const std::vector<std::string>& classes) {
  std::string csv = "group,label,tiles,predicted,majority_vote";
  for (const auto& c : classes) csv += "," + csv_field(c);
  csv += "\n";
  char number[32];
  for (int64_t u = 0; u < g.units.size(); ++u) {
    csv += csv_field(g.names[u]) + "," + csv_field(classes[g.units.labels[u]]) + "," + std::to_string(g.tiles[u]) +
           "," + csv_field(classes[g.units.predicted(u)]) + "," + csv_field(classes[g.vote[u]]);
    for (int64_t k = 0; k < g.units.classes; ++k) {
      std::snprintf(number, sizeof number, ",%.9g", g.units.p(u, k));
      csv += number;
    }
    csv += "\n";
  }
  return csv;
}

// predictions.csv -> predictions.groups.csv, beside it.
std::string group_predictions_path(const std::string& predictions) {
  fs::path path(predictions);
  const std::string ext = path.extension().string();
  return (path.parent_path() / (path.stem().string() + ".groups" + (ext.empty() ? ".csv" : ext))).string();
}

void write_predictions(const EvalOptions& o, const TileDataset& data, const ScoredImages& scored,
                       const std::vector<std::string>& groups, bool by_group) {
  write_file_atomically(o.predictions, predictions_csv(data, scored));
  if (!o.quiet) std::fprintf(stderr, "wrote %lld predictions to %s\n", static_cast<long long>(scored.size()), o.predictions.c_str());
  if (!by_group) return;
  const std::string path = group_predictions_path(o.predictions);
  const GroupScores g = scores_by_group(scored, groups);
  write_file_atomically(path, group_predictions_csv(g, data.classes));
  if (!o.quiet) std::fprintf(stderr, "wrote %lld group predictions to %s\n", static_cast<long long>(g.units.size()), path.c_str());
}

int run_eval(const EvalOptions& o) {
  set_threads(o.threads);
  const torch::Device device = parse_device(o.device);
  TrainedModel trained = open_trained_model(o.checkpoint, device, o.amp, o.trust_checkpoint);
  const auto& classes = trained.classes;
  const ReportOptions options = report_options(o, trained);  // its flags checked before any decoding

  DataOptions data_options;
  data_options.root = o.data;
  data_options.manifest = o.manifest;
  data_options.manifest_options = {parse_manifest_columns(o.manifest_columns), o.manifest_root};
  // A manifest's test rows when it has a split column naming some, else what --manifest-split says.
  data_options.only_split = o.manifest_split == "all" ? "" : o.manifest_split.empty() ? "test" : o.manifest_split;
  data_options.only_split_if_present = o.manifest_split.empty();
  data_options.image_size = trained.image_size;
  data_options.cache_dir = o.cache_dir;
  data_options.workers = o.workers;
  data_options.quiet = o.quiet;
  data_options.groups_csv = o.groups;
  data_options.stain = trained.stain;
  if (o.groups.empty() && o.group_by == "group" && o.bootstrap > 0)
    data_options.find_groups = near_copy_group_finder(o.cache_dir, o.workers, o.quiet);
  const TileDataset data = load_dataset(data_options, &classes);
  if (!o.quiet) std::fprintf(stderr, "%s\n", describe(data).c_str());
  std::vector<int64_t> items(static_cast<size_t>(data.size()));
  for (int64_t i = 0; i < data.size(); ++i) items[i] = i;
  const auto format = trained.channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
  const EvalResult result = evaluate(trained.model, BatchMaker(data, device, format, trained.normalization), items,
                                     static_cast<int64_t>(classes.size()), o.batch_size, trained.precision, o.tta);
  const std::vector<std::string> no_groups;
  const auto& groups = o.group_by == "image" ? no_groups : data.groups;
  nlohmann::json report = evaluation_report(result, data.labels, groups, classes, options);
  if (!o.predictions.empty())
    write_predictions(o, data, scored_at(result, data.labels, groups, options.apply_temperature ? options.temperature : 1.0),
                      groups, report.contains("by_group"));
  report["groups"] = o.group_by == "image" ? "none: each image is its own (--group-by image)" : data.groups_origin;
  report["tta"] = o.tta;
  report["skipped_images"] = data.cache->failed();
  report["checkpoint"] = trained.run.string();
  report["data"] = data.scan.root;
  report["seconds"] = result.seconds;
  report["amp"] = precision_name(trained.precision);
  if (!o.report_dir.empty()) {
    write_evaluation_report(report, scored_at(result, data.labels, groups, 1.0),
                            scored_at(result, data.labels, groups, options.temperature), classes, o.report_dir);
    if (!o.quiet) std::fprintf(stderr, "wrote %s/report.md\n", o.report_dir.c_str());
  }
  if (o.json)
    std::printf("%s\n", json_text(report, 2).c_str());
  else
    std::printf("%s", evaluation_console_text(report).c_str());
  return 0;
}

}  // namespace

Command add_eval_command(CLI::App& root) {
  auto o = std::make_shared<EvalOptions>();
  CLI::App* app = root.add_subcommand("eval", "Evaluate a checkpoint on a folder of class folders (or a manifest), with 95% intervals");
  add_checkpoint_flags(app, o->checkpoint, o->trust_checkpoint);
  CLI::Option* data = app->add_option("--data", o->data, "Dataset root; class folders are matched to the checkpoint's classes");
  CLI::Option* manifest = app->add_option(
      "--manifest", o->manifest,
      "Instead of --data: a CSV of path,label[,group][,split] (relative paths from --root, absolute ones as given)");
  data->excludes(manifest);
  app->add_option("--columns", o->manifest_columns,
                  "The manifest's own column names, e.g. path=filename,label=diagnosis,group=patient_id")
      ->needs(manifest);
  app->add_option("--root", o->manifest_root, "The folder the manifest's relative paths start from (default: its own)")
      ->needs(manifest);
  app->add_option("--manifest-split", o->manifest_split,
                  "train | val | test | all: the manifest's rows to evaluate (default: its test rows, all when it has none)")
      ->check(CLI::IsMember({"train", "val", "test", "all"}))
      ->needs(manifest);
  app->add_flag("--json", o->json, "Print the report as JSON");
  app->add_option("--batch-size", o->batch_size, "Images per forward pass")->capture_default_str();
  app->add_option("--threads", o->threads, "Intra-op threads (0: all cores)");
  app->add_option("--workers", o->workers, "Image decode threads (0: all cores)");
  app->add_option("--cache-dir", o->cache_dir, "Tile cache folder");
  app->add_option("--device", o->device, "cpu | cuda | cuda:N")->capture_default_str();
  app->add_option("--amp", o->amp, "none | bf16 | fp16 (default: as trained)");
  app->add_flag("--tta", o->tta, "Classify each tile from the mean over its 8 flips and rotations");
  app->add_option("--calibration", o->calibration,
                  "temperature | none: apply the checkpoint's temperature to the probabilities (default: when it has one)")
      ->check(CLI::IsMember({"temperature", "none"}));
  app->add_option("--bootstrap", o->bootstrap, "Resamples for the 95% confidence intervals (0: none)")->capture_default_str();
  app->add_option("--seed", o->seed, "Seed of the bootstrap's resamples")
      ->capture_default_str()
      ->check(integer_in_range(0, std::numeric_limits<uint64_t>::max()));
  app->add_option("--groups", o->groups,
                  "CSV filename,label,group_id naming each image's source group (default: near-copies found in the images)");
  app->add_option("--group-by", o->group_by, "group | image: the unit the bootstrap resamples")
      ->check(CLI::IsMember({"group", "image"}))->capture_default_str();
  app->add_flag("--by-group,!--no-by-group", o->by_group,
                "Also report per group (patient): each group's prediction from the mean of its tiles' probabilities, "
                "with the same metrics and intervals (default: on where a group holds several tiles)");
  app->add_option("--threshold", o->thresholds,
                  "CLASS=P: sensitivity, specificity, PPV and NPV of CLASS against the rest, positive when its "
                  "probability >= P (repeatable)");
  app->add_option("--target-sensitivity", o->target_sensitivities,
                  "CLASS=S: the same at the highest threshold reaching sensitivity S on these images (repeatable)");
  app->add_option("--report", o->report_dir,
                  "Write report.md, report.json and plots (confusion matrix, ROC curves with bands, reliability "
                  "before/after the temperature) here");
  app->add_option("--predictions", o->predictions,
                  "Write one CSV row per image: path,label,group,predicted,<probability of each class>; with groups, "
                  "NAME.groups.csv beside it holds one row per group");
  app->add_flag("--quiet", o->quiet, "No progress output");
  add_max_image_pixels_flag(app);
  return {app, [o] {
            if (o->data.empty() == o->manifest.empty()) throw UsageError("eval needs --data (a folder) or --manifest (a CSV)");
            (void)parse_manifest_columns(o->manifest_columns);
            if (o->batch_size < 1) throw UsageError("--batch-size must be at least 1");
            if (o->bootstrap < 0 || o->bootstrap > 1000000) throw UsageError("--bootstrap must be in [0, 1000000]");
            check_thread_count(o->workers, "--workers");
            return run_eval(*o);
          }};
}

}  // namespace histotrain
