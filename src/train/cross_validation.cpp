#include "train/cross_validation.h"

#include <cmath>
#include <cstdio>
#include <sstream>

#include "core/checkpoint.h"
#include "data/dataset.h"
#include "data/groups.h"
#include "train/run.h"
#include "train/trainer.h"
#include "util/csv.h"
#include "util/errors.h"
#include "util/files.h"
#include "util/gnuplot.h"
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
  fs::create_directories(out / "folds");
  for (size_t f = 0; f < folds.size(); ++f) {
    std::string list;
    for (const int64_t i : folds[f]) list += fs::path(data.path(i)).filename().string() + "\n";
    const fs::path path = fold_list(out, static_cast<int>(f) + 1);
    if (fs::exists(path) && read_regular_file(path, kMaxReportBytes) != list)
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
    const auto summary = nlohmann::json::parse(read_regular_file(run / "summary.json", kMaxReportBytes), nullptr, false);
    if (summary.is_discarded() || !summary.is_object()) throw Error(run.string() + "/summary.json is damaged: not JSON");
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

double metric_of(const nlohmann::json& val, const std::string& metric) {
  const auto it = val.find(metric);
  return it != val.end() && it->is_number() ? it->get<double>() : std::nan("");
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
  for (const auto& metric : cv_metrics()) summary[metric] = spread(values[metric]);
  return {{"folds", folds},
          {"seed", base.job.seed},
          {"images", data.size()},
          {"groups", data.groups_origin},
          {"per_fold", per_fold},
          {"summary", summary},
          {"ci_covers", "a t interval over the folds' values (the folds share training images, so it is a guide, "
                        "not an exact interval)"},
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
  const auto report = nlohmann::json::parse(read_regular_file(path, kMaxReportBytes), nullptr, false);
  if (report.is_discarded() || !report.is_object() || !report.contains("per_fold") || !report["per_fold"].is_array() ||
      !report.contains("folds") || !report["folds"].is_number_integer())
    throw Error(path.string() + " is damaged: not a cv report");
  return report;
}

// A fold's metric from a report that may come from elsewhere: NaN when it is not a number.
double fold_metric(const nlohmann::json& report, int fold, const std::string& metric) {
  const auto& row = report["per_fold"][static_cast<size_t>(fold)];
  return row.is_object() ? metric_of(row, metric) : std::nan("");
}

// folds.png: accuracy, balanced accuracy and macro-AUC per fold, as bars; "" or why not drawn.
std::string draw_fold_plot(const nlohmann::json& report, const fs::path& out) {
  std::string data = "# fold accuracy balanced_accuracy macro_auc\n";
  for (const auto& row : report["per_fold"]) {
    data += std::to_string(row["fold"].get<int>());
    for (const char* metric : {"accuracy", "balanced_accuracy", "macro_auc"})
      data += " " + (row[metric].is_number() ? number_or_dash(row[metric], "%.6f") : std::string("NaN"));
    data += "\n";
  }
  write_file_atomically(out / "folds.dat", data);
  write_file_atomically(out / "folds.gp",
                        "set terminal pngcairo noenhanced size 820,480 font ',11'\nset output 'folds.png'\n"
                        "set title 'Validation metrics per fold'\nset style data histograms\n"
                        "set style histogram clustered gap 1\nset style fill solid 0.8 border -1\nset grid ytics\n"
                        "set yrange [0:1]\nset key outside right\nset xlabel 'fold'\n"
                        "plot 'folds.dat' using 2:xtic(1) title 'accuracy', '' using 3 title 'balanced accuracy', "
                        "'' using 4 title 'macro-AUC'\n");
  return run_gnuplot(out, "folds.gp", "folds.log");
}

}  // namespace

const std::vector<std::string>& cv_metrics() {
  static const std::vector<std::string> metrics{"accuracy", "balanced_accuracy", "macro_f1", "macro_auc", "log_loss",
                                                "ece"};
  return metrics;
}

double t_quantile_975(int df) {
  static const double table[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                 2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                                 2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
  if (df < 1) return std::nan("");
  if (df <= 30) return table[df - 1];
  return df <= 60 ? 2.000 : df <= 120 ? 1.980 : 1.960;
}

nlohmann::json spread(const std::vector<double>& values) {
  const auto n = static_cast<int>(values.size());
  if (n == 0) return {{"mean", nullptr}, {"sd", nullptr}, {"ci", nullptr}, {"n", 0}};
  double mean = 0;
  for (double v : values) mean += v / n;
  if (n < 2) return {{"mean", mean}, {"sd", nullptr}, {"ci", nullptr}, {"n", n}};
  double squares = 0;
  for (double v : values) squares += (v - mean) * (v - mean);
  const double sd = std::sqrt(squares / (n - 1)), half = t_quantile_975(n - 1) * sd / std::sqrt(n);
  return {{"mean", mean}, {"sd", sd}, {"ci", {mean - half, mean + half}}, {"n", n}};
}

CrossValidationOutcome cross_validate(const TrainConfig& base, int folds, const fs::path& out) {
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
    if (read_regular_file(fold_list(a, fold), kMaxReportBytes) != read_regular_file(fold_list(b, fold), kMaxReportBytes))
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
    nlohmann::json entry = spread(differences);
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
          {"metrics", metrics}, {"ci_covers", "a paired t interval over the folds' differences"}};
}

std::string cv_markdown(const nlohmann::json& report) {
  std::ostringstream md;
  md << "# Grouped cross-validation: " << report["folds"].get<int>() << " folds\n\n"
     << report["images"].get<int64_t>() << " images; " << report["groups"].get<std::string>() << "; seed "
     << report["seed"].get<uint64_t>() << ".\n\n| fold | images |";
  for (const auto& metric : cv_metrics()) md << " " << metric << " |";
  md << "\n| ---: | ---: |";
  for (size_t i = 0; i < cv_metrics().size(); ++i) md << " ---: |";
  md << "\n";
  for (const auto& row : report["per_fold"]) {
    md << "| " << row["fold"].get<int>() << " | " << row["images"].get<int64_t>() << " |";
    for (const auto& metric : cv_metrics()) md << " " << number_or_dash(row[metric]) << " |";
    md << "\n";
  }
  md << "| mean ± sd | |";
  for (const auto& metric : cv_metrics()) {
    const auto& s = report["summary"][metric];
    md << " " << number_or_dash(s["mean"]) << " ± " << number_or_dash(s["sd"]) << " |";
  }
  md << "\n| 95% CI | |";
  for (const auto& metric : cv_metrics()) {
    const auto& ci = report["summary"][metric]["ci"];
    md << " " << (ci.is_array() ? number_or_dash(ci[0]) + "-" + number_or_dash(ci[1]) : "-") << " |";
  }
  md << "\n\n" << report["ci_covers"].get<std::string>() << ".\n";
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
