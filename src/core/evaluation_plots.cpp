#include "core/evaluation_plots.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <sstream>

#include "core/bootstrap.h"
#include "core/evaluation_text.h"
#include "util/files.h"
#include "util/gnuplot.h"
#include "util/json_text.h"

namespace histotrain {

namespace fs = std::filesystem;

namespace {

// Resamples behind the ROC band: enough for smooth 2.5/97.5 percentiles, few enough to stay
// well under a second for ten thousand tiles.
constexpr int kBandResamples = 500;
constexpr int kBandPoints = 101;
const char* const kColours[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
                                "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"};

std::string fixed(double value, const char* format = "%.4f") {
  char text[32];
  std::snprintf(text, sizeof text, format, value);
  return text;
}

std::string colour(size_t k) { return kColours[k % (sizeof kColours / sizeof kColours[0])]; }

// gnuplot tics naming each class at 0, 1, ...: "('colon_aca' 0, 'colon_n' 1)".
std::string class_tics(const std::vector<std::string>& classes) {
  std::string tics = "(";
  for (size_t k = 0; k < classes.size(); ++k) tics += (k ? ", " : "") + gnuplot_literal(classes[k]) + " " + std::to_string(k);
  return tics + ")";
}

// confusion.dat: predicted, truth, % of the truth's row, count.
std::string confusion_data(const nlohmann::json& matrix) {
  std::string data;
  for (size_t t = 0; t < matrix.size(); ++t) {
    double row = 0;
    for (const auto& v : matrix[t]) row += v.get<double>();
    for (size_t p = 0; p < matrix[t].size(); ++p) {
      const double count = matrix[t][p].get<double>();
      data += std::to_string(p) + " " + std::to_string(t) + " " + fixed(row > 0 ? 100 * count / row : 0, "%.2f") +
              " " + fixed(count, "%.0f") + "\n";
    }
  }
  return data;
}

std::string confusion_script(const std::string& png, const std::string& dat, const std::string& title,
                             const std::vector<std::string>& classes) {
  const auto K = static_cast<int>(classes.size());
  const int side = std::clamp(160 + 90 * K, 480, 1400);
  std::ostringstream gp;
  gp << "reset\nset terminal pngcairo noenhanced size " << side + 140 << "," << side << " font ',11'\n"
     << gnuplot_output(png) << "set title " << gnuplot_literal(title) << "\n"
     << "set xlabel 'predicted'\nset ylabel 'truth'\nset size ratio -1\nunset key\n"
     << "set xrange [-0.5:" << K - 0.5 << "]\nset yrange [" << K - 0.5 << ":-0.5]\n"
     << "set xtics " << class_tics(classes) << " rotate by 30 right\nset ytics " << class_tics(classes) << "\n"
     << "set tics scale 0\nset cbrange [0:100]\nset cblabel '% of the true class'\n"
     << "set palette defined (0 '#ffffff', 50 '#6baed6', 100 '#08306b')\n"
     << "plot " << gnuplot_literal(dat) << " using 1:2:3 with image, '' using 1:2:($3 < 55 ? sprintf('%d\\n%.1f%%', $4, $3) : '') "
     << "with labels tc 'black', '' using 1:2:($3 >= 55 ? sprintf('%d\\n%.1f%%', $4, $3) : '') with labels tc 'white'\n";
  return gp.str();
}

// roc.dat: one block per class with a curve (at most ~2,000 points); roc_band.dat: per class,
// FPR, the band's low and high TPR. Returns the classes drawn.
std::vector<int64_t> write_roc_data(const ScoredImages& s, const nlohmann::json& intervals, const fs::path& dir) {
  std::string curves, bands;
  std::vector<int64_t> drawn;
  std::vector<double> grid;
  for (int i = 0; i < kBandPoints; ++i) grid.push_back(static_cast<double>(i) / (kBandPoints - 1));
  const int resamples = std::min(kBandResamples, intervals.is_object() ? intervals["resamples"].get<int>() : 0);
  for (int64_t k = 0; k < s.classes; ++k) {
    const auto order = order_by_probability(s, k);
    const auto curve = roc_curve(s, k, order);
    if (curve.empty()) continue;
    drawn.push_back(k);
    const size_t every = curve.size() / 2000 + 1;
    for (size_t i = 0; i < curve.size(); ++i)
      if (i % every == 0 || i + 1 == curve.size())
        curves += fixed(curve[i].first, "%.6f") + " " + fixed(curve[i].second, "%.6f") + "\n";
    curves += "\n\n";
    std::mt19937_64 rng(intervals.is_object() ? intervals["seed"].get<uint64_t>() : 0);
    std::vector<std::vector<double>> at(grid.size());
    for (int r = 0; r < resamples; ++r) {
      const auto tpr = roc_tpr_at(s, k, order, draw_resample(s, rng), grid);
      for (size_t g = 0; g < grid.size(); ++g) at[g].push_back(tpr[g]);
    }
    for (size_t g = 0; g < grid.size() && resamples > 0; ++g) {
      const nlohmann::json band = percentile_interval(at[g]);
      if (band.is_array())
        bands += fixed(grid[g], "%.4f") + " " + fixed(band[0].get<double>(), "%.6f") + " " +
                 fixed(band[1].get<double>(), "%.6f") + "\n";
    }
    bands += "\n\n";
  }
  write_file_atomically(dir / "roc.dat", curves);
  write_file_atomically(dir / "roc_band.dat", bands);
  return drawn;
}

std::string roc_script(const std::vector<int64_t>& drawn, const std::vector<std::string>& classes,
                       const nlohmann::json& report, bool with_band) {
  std::ostringstream gp;
  gp << "reset\nset terminal pngcairo noenhanced size 1000,640 font ',11'\n" << gnuplot_output("roc.png")
     << "set title 'ROC, each class against the rest (shaded: 95% bootstrap band)'\nset grid\nset size ratio -1\n"
     << "set xrange [0:1]\nset yrange [0:1]\nset xlabel 'false positive rate (1 - specificity)'\n"
     << "set ylabel 'true positive rate (sensitivity)'\nset key outside right top\nplot ";
  const auto& ci = report["confidence_intervals"];
  for (size_t b = 0; b < drawn.size() && with_band; ++b)
    gp << "'roc_band.dat' index " << b << " using 1:2:3 with filledcurves fc rgb '" << colour(drawn[b])
       << "' fs transparent solid 0.18 noborder notitle, ";
  for (size_t b = 0; b < drawn.size(); ++b) {
    const int64_t k = drawn[b];
    std::string title = classes[k] + "  AUC " + fixed(report["per_class"][classes[k]]["auc"].get<double>(), "%.3f");
    if (ci.is_object() && ci.contains("class_auc") && ci["class_auc"][k].is_array())
      title += " (" + fixed(ci["class_auc"][k][0].get<double>(), "%.3f") + "-" +
               fixed(ci["class_auc"][k][1].get<double>(), "%.3f") + ")";
    gp << "'roc.dat' index " << b << " using 1:2 with lines lw 2 lc rgb '" << colour(k) << "' title "
       << gnuplot_literal(title) << ", ";
  }
  gp << "x with lines dt 2 lc 'gray' title 'chance'\n";
  return gp.str();
}

// reliability.dat: two blocks (temperature 1, then the report's): bin centre, mean confidence,
// accuracy, tiles, and whether the bin holds few tiles.
std::string reliability_data(const ScoredImages& raw, const ScoredImages& calibrated) {
  std::string text;
  for (const ScoredImages* s : {&raw, &calibrated}) {
    const Reliability r = reliability(*s);
    for (int b = 0; b < r.bins; ++b)
      if (r.count[b] > 0)
        text += fixed((b + 0.5) / r.bins, "%.5f") + " " + fixed(r.confidence[b], "%.6f") + " " +
                fixed(r.accuracy[b], "%.6f") + " " + std::to_string(r.count[b]) + " " +
                (r.count[b] < kFewTilesInBin ? "1" : "0") + "\n";
    text += "\n\n";
  }
  return text;
}

std::string reliability_script(const ScoredImages& raw, const ScoredImages& calibrated, double temperature) {
  const std::string before = "temperature 1 (ECE " + fixed(reliability(raw).ece, "%.3f") + ")";
  const std::string after = "temperature " + fixed(temperature, "%.3f") + " (ECE " + fixed(reliability(calibrated).ece, "%.3f") + ")";
  std::ostringstream gp;
  gp << "reset\nset terminal pngcairo noenhanced size 1000,860 font ',11'\n" << gnuplot_output("reliability.png")
     << "set multiplot\nset lmargin 12\nset rmargin 30\n"
     // The diagram: filled points for bins of at least kFewTilesInBin tiles, hollow ones below.
     << "set origin 0,0.3\nset size 1,0.7\nset title 'Reliability: accuracy against confidence (15 bins; hollow: "
     << "fewer than " << kFewTilesInBin << " tiles)'\nset grid\nset xrange [0:1]\nset yrange [0:1]\n"
     << "set xlabel 'mean top-class probability in the bin'\nset ylabel 'accuracy in the bin'\n"
     << "set key outside right top\nset label 1 'perfect calibration' at 0.62,0.58 rotate by 38 tc 'gray40'\n"
     << "plot x with lines dt 2 lc 'gray40' title 'perfect calibration', "
     << "'reliability.dat' index 0 using 2:3 with lines lw 2 lc rgb '#d62728' title " << gnuplot_literal(before) << ", "
     << "'' index 0 using 2:($5 == 0 ? $3 : 1/0) with points pt 7 ps 1.3 lc rgb '#d62728' notitle, "
     << "'' index 0 using 2:($5 == 1 ? $3 : 1/0) with points pt 6 ps 1.3 lc rgb '#d62728' notitle, "
     << "'' index 1 using 2:3 with lines lw 2 lc rgb '#1f77b4' title " << gnuplot_literal(after) << ", "
     << "'' index 1 using 2:($5 == 0 ? $3 : 1/0) with points pt 7 ps 1.3 lc rgb '#1f77b4' notitle, "
     << "'' index 1 using 2:($5 == 1 ? $3 : 1/0) with points pt 6 ps 1.3 lc rgb '#1f77b4' notitle\n"
     // Below: how many tiles each bin holds (log scale: the top bin usually holds most).
     << "unset label 1\nset origin 0,0\nset size 1,0.3\nset title 'tiles per bin'\nset logscale y\n"
     << "set yrange [0.8:*]\nset xlabel 'bin (top-class probability)'\nset ylabel 'tiles'\nset boxwidth 0.025\n"
     << "set style fill solid 0.6\nplot 'reliability.dat' index 0 using ($1 - 0.0125):4 with boxes lc rgb '#d62728' "
     << "title 'temperature 1', '' index 1 using ($1 + 0.0125):4 with boxes lc rgb '#1f77b4' title "
     << gnuplot_literal("temperature " + fixed(temperature, "%.3f")) << "\nunset multiplot\n";
  return gp.str();
}

}  // namespace

std::vector<double> roc_tpr_at(const ScoredImages& s, int64_t k, const std::vector<int64_t>& order,
                               const ImageWeights& weights, const std::vector<double>& grid) {
  std::vector<std::pair<double, double>> curve{{0.0, 0.0}};
  double tp = 0, fp = 0;
  for (size_t last = order.size(); last > 0;) {  // thresholds from the highest probability down
    const double value = s.p(order[last - 1], k);
    for (; last > 0 && s.p(order[last - 1], k) == value; --last) {
      const double w = weights.empty() ? 1.0 : weights[static_cast<size_t>(order[last - 1])];
      (s.labels[order[last - 1]] == k ? tp : fp) += w;
    }
    curve.emplace_back(fp, tp);
  }
  std::vector<double> tpr(grid.size(), std::nan(""));
  if (tp <= 0 || fp <= 0) return tpr;
  for (auto& point : curve) point = {point.first / fp, point.second / tp};
  size_t at = 0;
  for (size_t g = 0; g < grid.size(); ++g) {
    while (at + 1 < curve.size() && curve[at + 1].first < grid[g]) ++at;
    if (at + 1 >= curve.size()) {
      tpr[g] = 1.0;
      continue;
    }
    const auto [x0, y0] = curve[at];
    const auto [x1, y1] = curve[at + 1];
    tpr[g] = x1 > x0 ? y0 + (y1 - y0) * (grid[g] - x0) / (x1 - x0) : y1;
  }
  return tpr;
}

std::string write_evaluation_report(const nlohmann::json& report, const ScoredImages& raw,
                                    const ScoredImages& calibrated, const std::vector<std::string>& classes,
                                    const fs::path& dir) {
  ensure_writable_dir(dir);
  const double temperature = report["calibration"]["temperature"].get<double>();
  const ScoredImages& reported = report["calibration"]["applied"].get<bool>() ? calibrated : raw;
  const auto drawn = write_roc_data(reported, report["confidence_intervals"], dir);
  write_file_atomically(dir / "reliability.dat", reliability_data(raw, calibrated));
  write_file_atomically(dir / "confusion.dat", confusion_data(report["confusion_matrix"]));
  std::string gp = confusion_script("confusion.png", "confusion.dat",
                                    "Confusion matrix, " + std::to_string(report["images"].get<int64_t>()) +
                                        " tiles: count and % of the true class", classes);
  const bool by_group = report.contains("by_group");
  if (by_group) {
    write_file_atomically(dir / "confusion_by_group.dat", confusion_data(report["by_group"]["confusion_matrix"]));
    gp += confusion_script("confusion_by_group.png", "confusion_by_group.dat",
                           "Confusion matrix per group, " + std::to_string(report["by_group"]["units"].get<int64_t>()) +
                               " cases: count and % of the true class", classes);
  }
  if (!drawn.empty()) gp += roc_script(drawn, classes, report, report["confidence_intervals"].is_object());
  gp += reliability_script(raw, calibrated, temperature);
  write_file_atomically(dir / "plots.gp", gp);
  std::string md = evaluation_markdown(report);
  const std::string failed = run_gnuplot(dir, "plots.gp", "plots.log");
  if (!failed.empty()) {
    md += "\n(" + failed + ".)\n";
  } else {
    md += "\n![confusion matrix](confusion.png)\n";
    if (by_group) md += "\n![confusion matrix per group](confusion_by_group.png)\n";
    if (!drawn.empty()) md += "\n![ROC curves](roc.png)\n";
    md += "\n![reliability](reliability.png)\n";
  }
  write_file_atomically(dir / "report.md", md);
  write_file_atomically(dir / "report.json", json_text(report, 2) + "\n");
  return md;
}

}  // namespace histotrain
