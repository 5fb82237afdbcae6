#include "train/cross_validation.h"

#include <cmath>
#include <cstdio>
#include <sstream>

#include "core/checkpoint.h"
#include "core/fold_statistics.h"
#include "data/dataset.h"
#include "data/groups.h"
#include "train/run.h"
#include "train/trainer.h"
#include "util/csv.h"
#include "util/errors.h"
#include "util/files.h"
#include "util/gnuplot.h"
#include "util/json_file.h"
#include "util/json_text.h"

namespace histotrain {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kMaxReportBytes = 16 << 20;

fs::path fold_list(const fs::path& out, int fold) { return out / "folds" / ("fold-" + std::to_string(fold) + ".txt"); }
fs::path fold_run(const fs::path& out, int fold) { return out / ("fold-" + std::to_string(fold)); }

TileDataset load_for_folds(const TrainConfig& base) {
  return load_dataset(training_data_options(base, base.job.quiet, /*find_groups=*/true));
}

// folds/fold-K.txt (file names, one per line) and groups.csv; a DIR that already holds folds must
// hold these same ones: folds never change under finished runs.
void write_folds(const TileDataset& data, const std::vector<std::vector<int64_t>>& folds, const fs::path& out) {
  ensure_own_subfolder(out / "folds");
  for (size_t f = 0; f < folds.size(); ++f) {
    std::vector<std::string> names;
    for (const int64_t i : folds[f]) names.push_back(fs::path(data.path(i)).filename().string());
    const std::string list = list_file_text(names);
    const fs::path path = fold_list(out, static_cast<int>(f) + 1);
    if (fs::exists(path) && read_list_file(path) != names)
      throw Error(out.string() + " holds the folds of another cross-validation (" + path.string() +
                  " differs): choose another --out, or give the same data, groups, --folds and --seed");
    if (!fs::exists(path)) write_file_atomically(path, list);
  }
  std::string csv = "filename,label,group_id\n";
  for (int64_t i = 0; i < data.size(); ++i)
    csv += csv_field(fs::path(data.path(i)).filename().string()) + "," + csv_field(data.classes[data.labels[i]]) + "," +
           csv_field(data.groups[i]) + "\n";
  write_file_atomically(out / "groups.csv", csv);
}

// The fold's run: read when finished, resumed from its checkpoint, or started.
TrainOutcome run_fold(const TrainConfig& base, const fs::path& out, int fold, int folds) {
  const fs::path run = fold_run(out, fold);
  if (fs::exists(run / "summary.json")) {
    std::fprintf(stderr, "fold %d of %d: done, read from %s\n", fold, folds, run.string().c_str());
    const auto summary = read_json_file(run / "summary.json", kMaxReportBytes);
    if (!summary.is_object() || !summary.contains("val") || !summary["val"].is_object())
      throw Error((run / "summary.json").string() + " is damaged: no 'val' object");
    return {summary, 0};
  }
  TrainConfig config = base;
  if (has_checkpoint(run)) {
    std::fprintf(stderr, "fold %d of %d: continues from its checkpoint in %s\n", fold, folds, run.string().c_str());
    config = resumed_config(run.string(), nlohmann::json::object());
  } else {
    std::fprintf(stderr, "fold %d of %d: validating on %s\n", fold, folds, fold_list(out, fold).string().c_str());
    config.data.val_images = fold_list(out, fold).string();
    config.data.groups = (out / "groups.csv").string();
    config.job.out = run.string();
    config.job.resume.clear();
  }
  config.trust_checkpoint = base.trust_checkpoint;
  return train(config);
}

// A finished fold's weights and training state: only its figures (summary.json, metrics.jsonl)
// stay, unless --keep-models; a fold without them is read as done, never resumed.
void drop_fold_model(const fs::path& out, int fold) {
  const fs::path run = fold_run(out, fold);
  std::error_code ignored;
  for (const char* file : {"model.safetensors", "train_state.safetensors", "checkpoint.json"}) fs::remove(run / file, ignored);
  fs::remove_all(run / "previous", ignored);
}

MetricRange range_of(const std::string& metric) {
  return metric == "log_loss" ? MetricRange::positive : MetricRange::unit;
}

MetricRange difference_range_of(const std::string& metric) {
  return metric == "log_loss" ? MetricRange::real : MetricRange::difference;
}

// A metric of a fold's validation; "group_X" is X of its per-group section.
double metric_of(const nlohmann::json& val, const std::string& metric) {
  const bool per_group = metric.rfind("group_", 0) == 0;
  const auto section = per_group ? val.find("by_group") : val.end();
  const nlohmann::json& from = per_group ? (section != val.end() && section->is_object() ? *section : nlohmann::json())
                                         : val;
  if (!from.is_object()) return std::nan("");
  const auto it = from.find(per_group ? metric.substr(6) : metric);
  return it != from.end() && it->is_number() ? it->get<double>() : std::nan("");
}

nlohmann::json report_of(const std::vector<nlohmann::json>& fold_summaries, const TileDataset& data, int folds,
                         const TrainConfig& base) {
  nlohmann::json per_fold = nlohmann::json::array(), summary = nlohmann::json::object();
  std::map<std::string, std::vector<double>> values;
  for (size_t f = 0; f < fold_summaries.size(); ++f) {
    const auto& val = fold_summaries[f].at("val");
    nlohmann::json row = {{"fold", f + 1}, {"images", val.value("images", 0)}};
    for (const auto& metric : cv_metrics()) {
      const double v = metric_of(val, metric);
      row[metric] = std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v);
      if (!std::isnan(v)) values[metric].push_back(v);
    }
    per_fold.push_back(row);
  }
  for (const auto& metric : cv_metrics()) summary[metric] = spread(values[metric], range_of(metric));
  return {{"folds", folds},
          {"seed", base.job.seed},
          {"images", data.size()},
          {"groups", data.groups_origin},
          {"per_fold", per_fold},
          {"summary", summary},
          {"ci_covers", "95% intervals: a t interval over the folds' values, formed on the logit scale (log scale for "
                        "log-loss) so that it stays inside the metric's range; the folds share training images, so "
                        "it is a guide, not an exact interval"},
          {"config", to_json(base)}};
}

std::string number_or_dash(const nlohmann::json& v, const char* format = "%.4f") {
  if (!v.is_number()) return "-";
  char text[32];
  std::snprintf(text, sizeof text, format, v.get<double>());
  return text;
}

nlohmann::json read_cv_report(const fs::path& dir) {
  const fs::path path = dir / "cv.json";
  if (!fs::exists(path)) throw Error(dir.string() + " holds no cv.json: not a finished `histotrain cv` run");
  const auto report = read_json_file(path, kMaxReportBytes);
  if (!report.is_object() || !report.contains("per_fold") || !report["per_fold"].is_array() ||
      !report.contains("folds") || !report["folds"].is_number_integer())
    throw Error(path.string() + " is damaged: not a cv report");
  return report;
}

// A fold's metric from a report that may come from elsewhere: NaN when it is not a number.
double fold_metric(const nlohmann::json& report, int fold, const std::string& metric) {
  const auto& row = report["per_fold"][static_cast<size_t>(fold)];
  if (!row.is_object()) return std::nan("");
  const auto it = row.find(metric);
  return it != row.end() && it->is_number() ? it->get<double>() : std::nan("");
}

// The metrics folds.png draws, with their legend names.
const std::vector<std::pair<std::string, std::string>>& plotted_metrics() {
  static const std::vector<std::pair<std::string, std::string>> metrics{
      {"accuracy", "accuracy"}, {"balanced_accuracy", "balanced accuracy"}, {"macro_auc", "macro-AUC"},
      {"group_accuracy", "accuracy per group"}};
  return metrics;
}

// folds.png: the plotted metrics per fold as bars, titled with the run's folder, each metric's
// mean over the folds a dashed line of its colour; "" or why not drawn.
std::string draw_fold_plot(const nlohmann::json& report, const fs::path& out) {
  std::string data = "# fold";
  for (const auto& [metric, name] : plotted_metrics()) data += " " + metric;
  data += "\n";
  for (const auto& row : report["per_fold"]) {
    data += std::to_string(row["fold"].get<int>());
    for (const auto& [metric, name] : plotted_metrics())
      data += " " + (row.value(metric, nlohmann::json()).is_number() ? number_or_dash(row[metric], "%.6f") : "NaN");
    data += "\n";
  }
  write_file_atomically(out / "folds.dat", data);
  const char* colours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"};
  const int folds = report["folds"].get<int>();
  std::ostringstream gp;
  gp << "set terminal pngcairo noenhanced size 900,500 font ',11'\n" << gnuplot_output("folds.png") << "set title "
     << gnuplot_literal("Validation metrics per fold: " + fs::absolute(out).lexically_normal().filename().string() +
                        " (" + std::to_string(folds) + " folds; dashed: mean over the folds)")
     << "\nset style data histograms\nset style histogram clustered gap 1\nset style fill solid 0.8 border -1\n"
     << "set grid ytics\nset yrange [0:1.05]\nset xrange [-0.6:" << folds - 0.4 << "]\nset key outside right\n"
     << "set xlabel 'fold'\nplot ";
  size_t column = 2, drawn = 0;
  std::string means;
  for (const auto& [metric, name] : plotted_metrics()) {
    const auto& mean = report["summary"][metric]["mean"];
    if (!mean.is_number()) {
      ++column;
      continue;
    }
    const std::string c = colours[drawn++ % 4];
    gp << (column == 2 ? "" : ", ") << "'folds.dat' using " << column << (column == 2 ? ":xtic(1)" : "")
       << " lc rgb '" << c << "' title " << gnuplot_literal(name);
    means += ", " + number_or_dash(mean, "%.6f") + " with lines dt 2 lw 2 lc rgb '" + c + "' title " +
             gnuplot_literal("mean " + name + " " + number_or_dash(mean, "%.3f"));
    ++column;
  }
  gp << means << "\n";
  write_file_atomically(out / "folds.gp", gp.str());
  return run_gnuplot(out, "folds.gp", "folds.log");
}

// One markdown table: per fold, then mean ± sd and the 95% interval, of `metrics`.
std::string fold_table(const nlohmann::json& report, const std::vector<std::string>& metrics) {
  std::ostringstream md;
  md << "| fold | images |";
  for (const auto& metric : metrics) md << " " << metric << " |";
  md << "\n| ---: | ---: |";
  for (size_t i = 0; i < metrics.size(); ++i) md << " ---: |";
  md << "\n";
  for (const auto& row : report["per_fold"]) {
    md << "| " << row["fold"].get<int>() << " | " << row["images"].get<int64_t>() << " |";
    for (const auto& metric : metrics) md << " " << number_or_dash(row.value(metric, nlohmann::json())) << " |";
    md << "\n";
  }
  md << "| mean ± sd | |";
  for (const auto& metric : metrics) {
    const auto& s = report["summary"][metric];
    md << " " << number_or_dash(s["mean"]) << " ± " << number_or_dash(s["sd"]) << " |";
  }
  md << "\n| 95% CI | |";
  for (const auto& metric : metrics) {
    const auto& ci = report["summary"][metric]["ci"];
    md << " " << (ci.is_array() ? number_or_dash(ci[0]) + "-" + number_or_dash(ci[1]) : "-") << " |";
  }
  return md.str() + "\n";
}

}  // namespace

const std::vector<std::string>& cv_metrics() {
  static const std::vector<std::string> metrics{"accuracy",       "balanced_accuracy",       "macro_f1",
                                                "macro_auc",      "log_loss",                "ece",
                                                "group_accuracy", "group_balanced_accuracy", "group_macro_auc"};
  return metrics;
}

CrossValidationOutcome cross_validate(const TrainConfig& base, int folds, const fs::path& out, bool keep_models) {
  if (folds < 2 || folds > 100) throw UsageError("--folds must be between 2 and 100");
  if (!base.data.val_images.empty() || !base.job.resume.empty())
    throw UsageError("cv makes each fold's split and continues by itself: drop --val-images and --resume");
  if (base.data.split != DataSplit::group) throw UsageError("cv splits by source group: drop --split random");
  ensure_writable_dir(out);
  if (!base.data.val_data.empty()) throw UsageError("cv makes each fold's split from --data: drop --val-data");
  const TileDataset data = load_for_folds(base);
  if (data.has_given_split())
    throw UsageError("cv makes its folds from source groups, but the manifest's split column already names the "
                     "split: train with it, or leave the column out to cross-validate");
  const auto fold_items = grouped_folds(data.labels, data.groups, folds, base.job.seed);
  for (size_t f = 0; f < fold_items.size(); ++f)
    if (fold_items[f].empty())
      throw Error("fold " + std::to_string(f + 1) + " is empty: " + std::to_string(folds) + " folds need at least as "
                  "many source groups (" + data.groups_origin + ")");
  write_folds(data, fold_items, out);
  std::vector<nlohmann::json> summaries;
  for (int fold = 1; fold <= folds; ++fold) {
    const TrainOutcome outcome = run_fold(base, out, fold, folds);
    if (outcome.stopped_by != 0) return {nullptr, outcome.stopped_by};
    if (!keep_models) drop_fold_model(out, fold);
    summaries.push_back(outcome.summary);
  }
  const nlohmann::json report = report_of(summaries, data, folds, base);
  write_file_atomically(out / "cv.json", json_text(report, 2) + "\n");
  const std::string not_drawn = draw_fold_plot(report, out);
  write_file_atomically(out / "cv.md",
                        cv_markdown(report) + (not_drawn.empty() ? "\n![per fold](folds.png)\n" : "\n(" + not_drawn + ".)\n"));
  return {report, 0};
}

nlohmann::json compare_cross_validations(const fs::path& a, const fs::path& b) {
  const nlohmann::json ra = read_cv_report(a), rb = read_cv_report(b);
  const int folds = ra["folds"].get<int>();
  if (rb["folds"].get<int>() != folds) throw Error(a.string() + " and " + b.string() + " have different fold counts");
  if (folds < 2 || folds > 100 || ra["per_fold"].size() != static_cast<size_t>(folds) ||
      rb["per_fold"].size() != static_cast<size_t>(folds))
    throw Error("a cv report does not hold one row per fold");
  for (int fold = 1; fold <= folds; ++fold)
    if (read_list_file(fold_list(a, fold)) != read_list_file(fold_list(b, fold)))
      throw Error("fold " + std::to_string(fold) + " differs between " + a.string() + " and " + b.string() +
                  ": a paired comparison needs the same folds (same data, groups, --folds and --seed)");
  nlohmann::json metrics = nlohmann::json::object();
  for (const auto& metric : cv_metrics()) {
    std::vector<double> differences;
    nlohmann::json per_fold = nlohmann::json::array();
    for (int f = 0; f < folds; ++f) {
      const double x = fold_metric(ra, f, metric), y = fold_metric(rb, f, metric);
      if (std::isnan(x) || std::isnan(y)) {
        per_fold.push_back(nullptr);
        continue;
      }
      differences.push_back(x - y);
      per_fold.push_back(differences.back());
    }
    nlohmann::json entry = spread(differences, difference_range_of(metric));
    entry["per_fold"] = per_fold;
    const bool lower_is_better = metric == "log_loss" || metric == "ece";
    std::string verdict = "the folds cannot tell them apart (the interval holds 0)";
    if (entry["ci"].is_array()) {
      const double low = entry["ci"][0].get<double>(), high = entry["ci"][1].get<double>();
      if (low > 0) verdict = lower_is_better ? "B is better" : "A is better";
      if (high < 0) verdict = lower_is_better ? "A is better" : "B is better";
    } else {
      verdict = "too few folds for an interval";
    }
    entry["verdict"] = verdict;
    metrics[metric] = entry;
  }
  return {{"a", a.string()}, {"b", b.string()}, {"folds", folds}, {"difference", "A - B, fold by fold"},
          {"metrics", metrics},
          {"ci_covers", "95% intervals: a paired t interval over the folds' differences, formed on the atanh scale "
                        "(plain for log-loss) so that it stays inside [-1, 1]"}};
}

std::string cv_markdown(const nlohmann::json& report) {
  std::vector<std::string> per_tile, per_group;
  for (const auto& metric : cv_metrics())
    (metric.rfind("group_", 0) == 0 ? per_group : per_tile).push_back(metric);
  std::ostringstream md;
  md << "# Grouped cross-validation: " << report["folds"].get<int>() << " folds\n\n"
     << report["images"].get<int64_t>() << " images; " << report["groups"].get<std::string>() << "; seed "
     << report["seed"].get<uint64_t>() << ".\n\nPer tile:\n\n" << fold_table(report, per_tile);
  const auto& group_mean = report["summary"].value("group_accuracy", nlohmann::json()).value("mean", nlohmann::json());
  if (group_mean.is_number())
    md << "\nPer group (each group's prediction from the mean of its tiles' probabilities):\n\n"
       << fold_table(report, per_group);
  md << "\n" << report["ci_covers"].get<std::string>() << ".\n";
  return md.str();
}

std::string comparison_markdown(const nlohmann::json& comparison) {
  std::ostringstream md;
  md << "# A: " << comparison["a"].get<std::string>() << " against B: " << comparison["b"].get<std::string>() << ", "
     << comparison["folds"].get<int>() << " folds\n\n| metric | mean A - B | sd | 95% CI | verdict |\n"
     << "| --- | ---: | ---: | ---: | --- |\n";
  for (const auto& metric : cv_metrics()) {
    const auto& m = comparison["metrics"][metric];
    md << "| " << metric << " | " << number_or_dash(m["mean"], "%+.4f") << " | " << number_or_dash(m["sd"]) << " | "
       << (m["ci"].is_array() ? number_or_dash(m["ci"][0], "%+.4f") + " to " + number_or_dash(m["ci"][1], "%+.4f")
                              : "-")
       << " | " << m["verdict"].get<std::string>() << " |\n";
  }
  md << "\n" << comparison["ci_covers"].get<std::string>() << ".\n";
  return md.str();
}

}  // namespace histotrain
