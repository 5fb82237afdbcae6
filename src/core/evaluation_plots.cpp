#include "core/evaluation_plots.h"

#include <cstdio>
#include <sstream>

#include "util/files.h"
#include "util/gnuplot.h"
#include "util/json_text.h"

namespace histotrain {

namespace fs = std::filesystem;

namespace {

std::string fixed(double value, const char* format = "%.4f") {
  char text[32];
  std::snprintf(text, sizeof text, format, value);
  return text;
}

std::string metric_text(const nlohmann::json& report, const char* metric) {
  const auto& v = report[metric];
  if (!v.is_number()) return "n/a";
  std::string text = fixed(v.get<double>());
  const auto& ci = report["confidence_intervals"];
  if (ci.is_object() && ci[metric].is_array())
    text += " (" + fixed(ci[metric][0].get<double>()) + "-" + fixed(ci[metric][1].get<double>()) + ")";
  return text;
}

// One block per class with a curve (at most ~2,000 points: every n-th, and the last).
std::string roc_data(const ScoredImages& s, const std::vector<std::string>& classes, int& blocks) {
  std::string text;
  blocks = 0;
  for (int64_t k = 0; k < s.classes; ++k) {
    const auto curve = roc_curve(s, k, order_by_probability(s, k));
    if (curve.empty()) continue;
    text += gnuplot_data_title(classes[k]) + " \"\"\n";
    const size_t every = curve.size() / 2000 + 1;
    for (size_t i = 0; i < curve.size(); ++i)
      if (i % every == 0 || i + 1 == curve.size())
        text += fixed(curve[i].first, "%.6f") + " " + fixed(curve[i].second, "%.6f") + "\n";
    text += "\n\n";
    ++blocks;
  }
  return text;
}

// Two blocks, before and after the temperature: bin's mean confidence, accuracy (non-empty bins).
std::string reliability_data(const ScoredImages& raw, const ScoredImages& calibrated, double temperature) {
  std::string text;
  for (const auto& [title, s] : {std::pair<std::string, const ScoredImages*>{"temperature 1", &raw},
                                 {"temperature " + fixed(temperature, "%.3f"), &calibrated}}) {
    const Reliability r = reliability(*s);
    text += gnuplot_data_title(title + ", ECE " + fixed(r.ece, "%.3f")) + " \"\"\n";
    for (int b = 0; b < r.bins; ++b)
      if (r.count[b] > 0) text += fixed(r.confidence[b], "%.6f") + " " + fixed(r.accuracy[b], "%.6f") + "\n";
    text += "\n\n";
  }
  return text;
}

std::string plot_script(int roc_blocks) {
  std::string gp = "set terminal pngcairo noenhanced size 720,620 font ',11'\nset grid\nset size square\n"
                   "set xrange [0:1]\nset yrange [0:1]\n";
  if (roc_blocks > 0)
    gp += "set output 'roc.png'\nset title 'ROC, each class against the rest'\nset key right bottom\n"
          "set xlabel 'false positive rate'\nset ylabel 'true positive rate'\n"
          "plot x title 'chance' dt 2 lc 'gray', for [i=0:" + std::to_string(roc_blocks - 1) +
          "] 'roc.dat' index i using 1:2 with lines lw 2 title columnheader(1)\n";
  gp += "set output 'reliability.png'\nset title 'Reliability: accuracy against confidence (15 bins)'\n"
        "set key left top\nset xlabel 'mean top-class probability in the bin'\nset ylabel 'accuracy in the bin'\n"
        "plot x title 'calibrated' dt 2 lc 'gray', for [i=0:1] 'reliability.dat' index i using 1:2 "
        "with linespoints lw 2 title columnheader(1)\n";
  return gp;
}

std::string markdown_of(const nlohmann::json& report, const std::vector<std::string>& classes) {
  std::ostringstream md;
  md << "# Evaluation\n\n" << report["images"].get<int64_t>() << " images of " << report.value("data", std::string("?"))
     << "; checkpoint " << report.value("checkpoint", std::string("?")) << ".\n\n";
  const auto& ci = report["confidence_intervals"];
  if (ci.is_object())
    md << "95% intervals: bootstrap over " << ci["units"].get<int64_t>() << " " << ci["unit"].get<std::string>()
       << "s, " << ci["resamples"].get<int>() << " resamples, seed " << ci["seed"].get<uint64_t>() << ".\n\n";
  md << "| metric | value |\n| --- | --- |\n";
  for (const char* metric : {"accuracy", "balanced_accuracy", "macro_f1", "macro_auc", "log_loss", "ece"})
    md << "| " << metric << " | " << metric_text(report, metric) << " |\n";
  const auto& cal = report["calibration"];
  md << "\nCalibration: ECE " << fixed(cal["ece_before"].get<double>()) << " at temperature 1, "
     << fixed(cal["ece_after"].get<double>()) << " at " << fixed(cal["temperature"].get<double>(), "%.3f") << " ("
     << cal["from"].get<std::string>() << "; " << (cal["applied"].get<bool>() ? "applied" : "not applied")
     << " to the metrics above).\n\n| class | precision | recall | F1 | AUC | AP | support |\n"
     << "| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  for (const auto& name : classes) {
    const auto& k = report["per_class"][name];
    const auto or_na = [](const nlohmann::json& v) { return v.is_number() ? fixed(v.get<double>()) : "n/a"; };
    md << "| " << name << " | " << or_na(k["precision"]) << " | " << or_na(k["recall"]) << " | " << or_na(k["f1"])
       << " | " << or_na(k["auc"]) << " | " << or_na(k["average_precision"]) << " | " << k["support"].get<int64_t>()
       << " |\n";
  }
  return md.str();
}

}  // namespace

std::string write_evaluation_report(const nlohmann::json& report, const ScoredImages& raw,
                                    const ScoredImages& calibrated, const std::vector<std::string>& classes,
                                    const fs::path& dir) {
  ensure_writable_dir(dir);
  int roc_blocks = 0;
  write_file_atomically(dir / "roc.dat", roc_data(calibrated, classes, roc_blocks));
  write_file_atomically(dir / "reliability.dat",
                        reliability_data(raw, calibrated, report["calibration"]["temperature"].get<double>()));
  write_file_atomically(dir / "plots.gp", plot_script(roc_blocks));
  std::string md = markdown_of(report, classes);
  const std::string failed = run_gnuplot(dir, "plots.gp", "plots.log");
  if (!failed.empty())
    md += "\n(" + failed + ".)\n";
  else
    md += std::string(roc_blocks > 0 ? "\n![ROC curves](roc.png)" : "") + "\n![reliability](reliability.png)\n";
  write_file_atomically(dir / "report.md", md);
  write_file_atomically(dir / "report.json", json_text(report, 2) + "\n");
  return md;
}

}  // namespace histotrain
