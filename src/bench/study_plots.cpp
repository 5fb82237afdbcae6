// The study's plots: gnuplot data files and a script, run from their words in the plots folder.
#include "bench/study_plots.h"

#include <algorithm>
#include <map>
#include <vector>

#include "bench/study_rows.h"
#include "util/errors.h"
#include "util/files.h"
#include "util/gnuplot.h"

namespace histotrain {

using study_rows::fixed;
using study_rows::label;
using study_rows::ok;
using study_rows::study_of;

namespace {

std::string number_or_nan(const nlohmann::json& r, const char* key) {
  return r.contains(key) && r.at(key).is_number() ? fixed(r.at(key).get<double>(), 4) : "NaN";
}

// gnuplot data blocks, one per series: "title" line, then x y rows; blocks apart by two blank lines.
void write_series(const std::filesystem::path& file, const std::map<std::string, std::vector<std::pair<double, double>>>& series) {
  std::string text;
  for (const auto& [title, points] : series) {
    text += gnuplot_data_title(title) + " \"\"\n";
    for (const auto& [x, y] : points) text += fixed(x, 4) + " " + fixed(y, 4) + "\n";
    text += "\n\n";
  }
  write_file_atomically(file, text);
}

using Series = std::map<std::string, std::vector<std::pair<double, double>>>;

// What the plots show, gathered from the results.
struct PlotData {
  Series speedup, efficiency, decode, loss, accuracy;
  const nlohmann::json* confusion = nullptr;  // the first time-to-accuracy run's
  int max_workers = 1;
  bool any_peer = false;
  std::string throughput;  // rows of: config, histotrain images/s, the peer's
};

// Speedup and efficiency against workers, for the scaling methods (threads, ranks).
void collect_scaling(const nlohmann::json& rows, PlotData& d) {
  for (const auto& r : rows) {
    if (!ok(r) || r.value("device", "") != "cpu" || !r.contains("speedup")) continue;
    const std::string method = r.value("method", "");
    if (method != "threads" && method != "ranks" && r.value("config", "") != "serial") continue;
    const std::vector<std::string> targets =
        r.value("config", "") == "serial" ? std::vector<std::string>{"threads", "ranks"} : std::vector<std::string>{method};
    for (const auto& m : targets) {
      const std::string s = (study_of(r).empty() ? "" : study_of(r) + " ") + r.value("program", "") + " " + m;
      d.speedup[s].push_back({r.value("workers", 1), r.at("speedup").get<double>()});
      d.efficiency[s].push_back({r.value("workers", 1), r.at("efficiency").get<double>()});
    }
    d.max_workers = std::max(d.max_workers, r.value("workers", 1));
  }
  for (auto* m : {&d.speedup, &d.efficiency})
    for (auto& [name, points] : *m) std::sort(points.begin(), points.end());
}

void collect_throughput(const nlohmann::json& rows, PlotData& d) {
  for (const auto& r : rows) {
    if (r.value("program", "") != "histotrain" || !ok(r)) continue;
    double peer = 0;
    for (const auto& p : rows)
      if (p.value("program", "") == "peer" && ok(p) && p.value("config", "") == r.value("config", "") &&
          study_of(p) == study_of(r))
        peer = p.value("images_per_s", 0.0);
    d.any_peer |= peer > 0;
    d.throughput += gnuplot_data_title(label(r)) + " " + number_or_nan(r, "images_per_s") + " " +
                    (peer > 0 ? fixed(peer, 4) : "NaN") + "\n";
  }
}

void collect_decoding_and_curves(const nlohmann::json& results, PlotData& d) {
  for (const auto& r : results.at("decode"))
    if (ok(r) && r.contains("speedup"))
      d.decode[(study_of(r).empty() ? "" : study_of(r) + " ") + r.value("mode", "")].push_back(
          {r.value("workers", 1), r.at("speedup").get<double>()});
  for (const auto& a : results.at("accuracy")) {
    if (!ok(a)) continue;
    if (!d.confusion) d.confusion = &a;
    for (const auto& e : a.at("curve")) {
      d.loss[label(a)].push_back({e.value("epoch", 0), e.value("train_loss", 0.0)});
      if (e.contains("val_acc")) d.accuracy[label(a)].push_back({e.value("epoch", 0), e.at("val_acc").get<double>()});
    }
  }
}

void write_plot_data(const PlotData& d, const std::filesystem::path& plots) {
  write_series(plots / "speedup.dat", d.speedup);
  write_series(plots / "efficiency.dat", d.efficiency);
  write_file_atomically(plots / "throughput.dat", d.throughput);
  write_series(plots / "decode.dat", d.decode);
  write_series(plots / "loss.dat", d.loss);
  write_series(plots / "accuracy.dat", d.accuracy);
  std::string matrix;
  if (d.confusion)
    for (const auto& row : d.confusion->at("confusion_matrix")) {
      for (const auto& v : row) matrix += std::to_string(v.get<long long>()) + " ";
      matrix += "\n";
    }
  write_file_atomically(plots / "confusion.dat", matrix);
}

// The gnuplot script: a declarative table of plots, one block per figure.
std::string gnuplot_script(const PlotData& d) {
  const Series &speedup = d.speedup, &efficiency = d.efficiency, &decode = d.decode, &loss = d.loss,
               &accuracy = d.accuracy;
  const int max_workers = d.max_workers;
  const bool any_peer = d.any_peer;
  const nlohmann::json* confusion = d.confusion;
  const auto blocks = [](const auto& m) { return std::to_string(m.size()); };
  std::string gp = "set terminal pngcairo noenhanced size 900,540 font ',11'\nset grid\nset key left top\n";
  gp += gnuplot_output("speedup.png") + "set title 'Training speedup S(p) = T(1)/T(p), same global batch'\nset xlabel 'cores used (ranks x threads)'\n"
        "set ylabel 'speedup'\nset xrange [1:" + std::to_string(std::max(2, max_workers)) + "]\nset yrange [0:*]\n" +
        (max_workers <= 16 ? "set xtics 1\n" : "") +
        "plot x title 'ideal' dt 2 lc 'gray'" + (speedup.empty() ? "" : ", for [i=0:" + blocks(speedup) + "-1] 'speedup.dat' index i using 1:2 with linespoints title columnheader(1)") + "\n";
  gp += gnuplot_output("efficiency.png") + "set title 'Efficiency E(p) = S(p)/p'\nset ylabel 'efficiency'\nset yrange [0:1.2]\n"
        "plot 1 title 'ideal' dt 2 lc 'gray'" + (efficiency.empty() ? "" : ", for [i=0:" + blocks(efficiency) + "-1] 'efficiency.dat' index i using 1:2 with linespoints title columnheader(1)") + "\n";
  gp += gnuplot_output("throughput.png") + "set title 'Training images/s by configuration'\nset autoscale\nset xrange [*:*]\nset yrange [0:*]\n"
        "unset xlabel\nset xtics autofreq\nset ylabel 'images/s'\nset style data histograms\nset style histogram clustered gap 1\n"
        "set style fill solid 0.8 border -1\nset xtics rotate by -30\nset key right top\n"
        "plot 'throughput.dat' using 2:xtic(1) title 'histotrain'" + std::string(any_peer ? ", '' using 3 title 'Python peer'" : "") + "\n"
        "set xtics norotate\nset style data linespoints\nset key left top\n";
  if (!decode.empty())
    gp += gnuplot_output("decode.png") + "set title 'JPEG decode + resize speedup'\nset xlabel 'workers'\nset ylabel 'speedup'\n"
          "set xrange [1:*]\nset yrange [0:*]\nplot x title 'ideal' dt 2 lc 'gray', for [i=0:" + blocks(decode) +
          "-1] 'decode.dat' index i using 1:2 with linespoints title columnheader(1)\n";
  if (!loss.empty())
    gp += gnuplot_output("curves.png") + "set multiplot layout 1,2 title 'Time-to-accuracy runs'\nset xlabel 'epoch'\nset xrange [*:*]\n"
          "set yrange [0:*]\nset title 'training loss'\nset ylabel 'loss'\nplot for [i=0:" + blocks(loss) +
          "-1] 'loss.dat' index i using 1:2 with linespoints title columnheader(1)\nset title 'validation accuracy'\n"
          "set ylabel 'accuracy'\nset yrange [0:1]\n" + (accuracy.empty() ? "plot NaN notitle\n" : "plot for [i=0:" + blocks(accuracy) +
          "-1] 'accuracy.dat' index i using 1:2 with linespoints title columnheader(1)\n") + "unset multiplot\n";
  if (confusion)
    gp += gnuplot_output("confusion.png") + "set title " + gnuplot_literal("Confusion matrix, " + label(*confusion) + " (rows: truth)") +
          "\nunset grid\n"
          "set xlabel 'predicted'\nset ylabel 'truth'\nset autoscale\nset yrange [*:*] reverse\nset palette defined (0 'white', 1 'dark-blue')\n"
          "plot 'confusion.dat' matrix with image notitle, '' matrix using 1:2:(sprintf('%d', $3)) with labels notitle\n";
  return gp;
}

}  // namespace

bool draw_plots(const nlohmann::json& results, const std::filesystem::path& folder, std::string& markdown) {
  const auto plots = folder / "plots";
  ensure_own_subfolder(plots);
  PlotData d;
  collect_scaling(results.at("training"), d);
  collect_throughput(results.at("training"), d);
  collect_decoding_and_curves(results, d);
  write_plot_data(d, plots);
  write_file_atomically(plots / "plots.gp", gnuplot_script(d));
  const std::string failed = run_gnuplot(plots, "plots.gp", "plots.log");
  if (!failed.empty()) {
    markdown += "\n(" + failed + "; `histotrain report` draws them again.)\n";
    return false;
  }
  markdown += "\n![speedup](plots/speedup.png) ![efficiency](plots/efficiency.png)\n\n![images/s](plots/throughput.png)\n";
  if (!d.decode.empty()) markdown += "\n![decoding](plots/decode.png)\n";
  if (!d.loss.empty()) markdown += "\n![curves](plots/curves.png)\n";
  if (d.confusion) markdown += "\n![confusion matrix](plots/confusion.png)\n";
  return true;
}

}  // namespace histotrain
