#include "bench/study_report.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>

#include "util/errors.h"
#include "util/files.h"
#include "util/process.h"
#include "util/progress.h"

namespace histotrain {

namespace {

std::string fixed(double v, int digits) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", digits, v);
  return text;
}

bool ok(const nlohmann::json& row) { return row.value("status", "") == "ok"; }

std::string study_of(const nlohmann::json& row) { return row.value("study", ""); }

// images/s of `program`'s run of `config` in `study`; 0 when absent or not ok.
double rate_of(const nlohmann::json& rows, const std::string& study, const std::string& program,
               const std::string& config) {
  for (const auto& r : rows)
    if (study_of(r) == study && r.value("program", "") == program && r.value("config", "") == config && ok(r))
      return r.value("images_per_s", 0.0);
  return 0;
}

}  // namespace

nlohmann::json derive_figures(const nlohmann::json& results) {
  nlohmann::json out = results;
  auto& rows = out["training"];
  for (auto& r : rows) {
    if (!ok(r)) continue;
    const double base = rate_of(rows, study_of(r), r.value("program", ""), "serial");
    const double rate = r.value("images_per_s", 0.0);
    if (base > 0) {
      r["speedup"] = rate / base;
      // Efficiency per core; a GPU run's speedup over one CPU core has no such meaning.
      if (r.value("device", "cpu") == "cpu") r["efficiency"] = rate / base / r.value("workers", 1);
    }
    if (r.value("train_images", 0) > 0) r["epoch_s_estimate"] = r.value("train_images", 0) / rate;
    if (r.value("program", "") == "histotrain") {
      const double peer = rate_of(rows, study_of(r), "peer", r.value("config", ""));
      if (peer > 0) r["vs_peer"] = rate / peer;
    }
  }
  auto& decode = out["decode"];
  std::map<std::string, double> one_worker;
  for (const auto& d : decode)
    if (ok(d) && d.value("workers", 0) == 1) one_worker[study_of(d) + "/" + d.value("mode", "")] = d.value("images_per_s", 0.0);
  for (auto& d : decode) {
    const double base = one_worker[study_of(d) + "/" + d.value("mode", "")];
    if (!ok(d) || base <= 0) continue;
    d["speedup"] = d.value("images_per_s", 0.0) / base;
    d["efficiency"] = d.value("images_per_s", 0.0) / base / d.value("workers", 1);
  }
  return out;
}

nlohmann::json merge_studies(const std::vector<nlohmann::json>& studies, const std::vector<std::string>& labels) {
  nlohmann::json merged = {{"studies", nlohmann::json::array()},
                           {"training", nlohmann::json::array()},
                           {"accuracy", nlohmann::json::array()},
                           {"decode", nlohmann::json::array()}};
  for (size_t i = 0; i < studies.size(); ++i) {
    nlohmann::json info = studies[i].at("study");
    info["label"] = labels[i];
    merged["studies"].push_back(info);
    for (const char* part : {"training", "accuracy", "decode"})
      for (auto row : studies[i].value(part, nlohmann::json::array())) {
        row["study"] = labels[i];
        merged[part].push_back(row);
      }
  }
  return merged;
}

namespace {

std::string cell(const nlohmann::json& r, const char* key, int digits, const char* suffix = "") {
  if (!r.contains(key) || r.at(key).is_null()) return "";
  return fixed(r.at(key).get<double>(), digits) + suffix;
}

std::string percent(const nlohmann::json& r, const char* key) {
  if (!r.contains(key)) return "";
  return fixed(100 * r.at(key).get<double>(), 0) + "%";
}

std::string label(const nlohmann::json& r) {
  const std::string study = study_of(r);
  return (study.empty() ? "" : study + ": ") + r.value("config", "");
}

std::string machine_lines(const nlohmann::json& results) {
  std::ostringstream md;
  auto describe = [&](const nlohmann::json& s, const std::string& prefix) {
    std::string isa, gpus;
    for (const auto& name : s.value("isa", nlohmann::json::array())) isa += " " + name.get<std::string>();
    for (const auto& gpu : s.value("gpus", nlohmann::json::array())) gpus += ", " + gpu.value("name", "");
    md << "- " << prefix << s.value("cpu", "") << ", " << s.value("cores", 0) << " cores"
       << (isa.empty() ? "" : " (" + isa.substr(1) + ")") << gpus << ", CUDA "
       << (s.value("cuda", false) ? "yes" : "no") << ", LibTorch " << s.value("torch", "")
       << (s.contains("allocator") ? ", " + s.value("allocator", "") : "") << "; data "
       << s.value("data", "") << "; " << s.value("date", "") << "; the study took "
       << format_duration(s.value("seconds", 0.0)) << ".\n";
    const auto& p = s.at("plan");
    md << "  Plan: " << p.value("arch", "") << ", " << p.value("image_size", 0) << " px, global batch "
       << p.value("global_batch", 0) << " in every configuration, " << p.value("steps", 0) << " steps per run, "
       << p.value("repeats", 0) << " runs per configuration (median, min–max), after one warm-up run that "
       << "fills the tile cache.\n";
  };
  if (results.contains("studies"))
    for (const auto& s : results.at("studies")) describe(s, "**" + s.value("label", "") + "**: ");
  else
    describe(results.at("study"), "");
  return md.str();
}

std::string training_table(const nlohmann::json& rows) {
  std::ostringstream md;
  md << "| configuration | method | ranks x threads | device | histotrain images/s (min–max) | S | E | epoch (est.) | "
        "peak RSS | Python peer images/s | histotrain / peer |\n"
     << "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  for (const auto& r : rows) {
    if (r.value("program", "") != "histotrain") continue;
    md << "| " << label(r) << " | " << r.value("method", "") << " | " << r.value("ranks", 1) << " x "
       << r.value("threads", 1) << " | " << r.value("device", "") << (r.value("amp", "none") != "none" ? " " + r.value("amp", "") : "")
       << (r.value("channels_last", false) ? " CL" : "") << " | ";
    if (!ok(r)) {
      md << r.value("status", "") << ": " << r.value("reason", "") << " | | | | | | |\n";
      continue;
    }
    md << cell(r, "images_per_s", 1) << " (" << cell(r, "images_per_s_min", 1) << "–" << cell(r, "images_per_s_max", 1)
       << ") | " << cell(r, "speedup", 2) << " | " << percent(r, "efficiency") << " | " << cell(r, "epoch_s_estimate", 0, " s")
       << " | " << cell(r, "peak_rss_mib", 0, " MiB") << " | ";
    for (const auto& p : rows)
      if (p.value("program", "") == "peer" && p.value("config", "") == r.value("config", "") && study_of(p) == study_of(r))
        md << (ok(p) ? cell(p, "images_per_s", 1) + " (" + cell(p, "images_per_s_min", 1) + "–" +
                           cell(p, "images_per_s_max", 1) + ")"
                     : p.value("status", "") + ": " + p.value("reason", ""));
    md << " | " << cell(r, "vs_peer", 2, "x") << " |\n";
  }
  return md.str();
}

std::string accuracy_table(const nlohmann::json& rows) {
  std::ostringstream md;
  md << "| configuration | epochs run | validation accuracy | macro-F1 | time to target | training time |\n"
     << "| --- | ---: | ---: | ---: | ---: | ---: |\n";
  for (const auto& r : rows) {
    md << "| " << label(r) << " | ";
    if (!ok(r)) {
      md << r.value("status", "") << ": " << r.value("reason", "") << " | | | | |\n";
      continue;
    }
    const std::string target = "≥ " + fixed(r.value("target_acc", 0.0), 2);
    md << r.value("epochs", 0) << " | " << cell(r, "val_acc", 4) << " | " << cell(r, "val_macro_f1", 4) << " | "
       << (r.at("time_to_target_s").is_null() ? "not reached (" + target + ")"
                                              : format_duration(r.at("time_to_target_s").get<double>()) + " (" + target + ")")
       << " | " << format_duration(r.value("train_s", 0.0)) << " |\n";
  }
  return md.str();
}

std::string decode_table(const nlohmann::json& rows) {
  std::ostringstream md;
  md << "| mode | workers | images/s (decoding) | S | E | images/s (wall, start-up included) |\n"
     << "| --- | ---: | ---: | ---: | ---: | ---: |\n";
  for (const auto& d : rows) {
    md << "| " << (study_of(d).empty() ? "" : study_of(d) + ": ") << d.value("mode", "") << " | " << d.value("workers", 0)
       << " | ";
    if (!ok(d)) {
      md << d.value("status", "") << ": " << d.value("reason", "") << " | | | |\n";
      continue;
    }
    md << cell(d, "images_per_s", 0) << " | " << cell(d, "speedup", 2) << " | " << percent(d, "efficiency") << " | "
       << cell(d, "images_per_s_wall", 0) << " |\n";
  }
  return md.str();
}

// --- plots -----------------------------------------------------------------------------------

std::string number_or_nan(const nlohmann::json& r, const char* key) {
  return r.contains(key) && r.at(key).is_number() ? fixed(r.at(key).get<double>(), 4) : "NaN";
}

// Names come from results.json files that may come from other machines: in a gnuplot data file a
// title is a double-quoted string, so quotes and line breaks (which would end it) become spaces.
std::string data_title(const std::string& name) {
  std::string title = name;
  for (char& ch : title)
    if (ch == '"' || static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = ' ';
  return "\"" + title + "\"";
}

// A string literal for the gnuplot script itself: single-quoted, where only a doubled quote has a
// meaning; no line break can end the command it stands in.
std::string script_literal(const std::string& text) {
  std::string literal = "'";
  for (char ch : text) {
    if (ch == '\'') literal += "''";
    else literal += static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f ? ' ' : ch;
  }
  return literal + "'";
}

// gnuplot data blocks, one per series: "title" line, then x y rows; blocks apart by two blank lines.
void write_series(const std::filesystem::path& file, const std::map<std::string, std::vector<std::pair<double, double>>>& series) {
  std::string text;
  for (const auto& [title, points] : series) {
    text += data_title(title) + " \"\"\n";
    for (const auto& [x, y] : points) text += fixed(x, 4) + " " + fixed(y, 4) + "\n";
    text += "\n\n";
  }
  write_file_atomically(file, text);
}

bool draw_plots(const nlohmann::json& results, const std::filesystem::path& folder, std::string& markdown) {
  const auto plots = folder / "plots";
  std::filesystem::create_directories(plots);
  const auto& rows = results.at("training");
  // Speedup and efficiency against workers, for the scaling methods (threads, ranks).
  std::map<std::string, std::vector<std::pair<double, double>>> speedup, efficiency;
  int max_workers = 1;
  for (const auto& r : rows) {
    if (!ok(r) || r.value("device", "") != "cpu" || !r.contains("speedup")) continue;
    const std::string method = r.value("method", "");
    if (method != "threads" && method != "ranks" && r.value("config", "") != "serial") continue;
    const std::vector<std::string> targets =
        r.value("config", "") == "serial" ? std::vector<std::string>{"threads", "ranks"} : std::vector<std::string>{method};
    for (const auto& m : targets) {
      const std::string s = (study_of(r).empty() ? "" : study_of(r) + " ") + r.value("program", "") + " " + m;
      speedup[s].push_back({r.value("workers", 1), r.at("speedup").get<double>()});
      efficiency[s].push_back({r.value("workers", 1), r.at("efficiency").get<double>()});
    }
    max_workers = std::max(max_workers, r.value("workers", 1));
  }
  for (auto* m : {&speedup, &efficiency})
    for (auto& [name, points] : *m) std::sort(points.begin(), points.end());
  write_series(plots / "speedup.dat", speedup);
  write_series(plots / "efficiency.dat", efficiency);
  bool any_peer = false;
  std::string throughput;  // config, histotrain, peer
  for (const auto& r : rows)
    if (r.value("program", "") == "histotrain" && ok(r)) {
      double peer = 0;
      for (const auto& p : rows)
        if (p.value("program", "") == "peer" && ok(p) && p.value("config", "") == r.value("config", "") &&
            study_of(p) == study_of(r))
          peer = p.value("images_per_s", 0.0);
      any_peer |= peer > 0;
      throughput += data_title(label(r)) + " " + number_or_nan(r, "images_per_s") + " " + (peer > 0 ? fixed(peer, 4) : "NaN") + "\n";
    }
  write_file_atomically(plots / "throughput.dat", throughput);
  std::map<std::string, std::vector<std::pair<double, double>>> decode;
  for (const auto& d : results.at("decode"))
    if (ok(d) && d.contains("speedup"))
      decode[(study_of(d).empty() ? "" : study_of(d) + " ") + d.value("mode", "")].push_back({d.value("workers", 1), d.at("speedup").get<double>()});
  write_series(plots / "decode.dat", decode);
  std::map<std::string, std::vector<std::pair<double, double>>> loss, accuracy;
  const nlohmann::json* confusion = nullptr;
  for (const auto& a : results.at("accuracy")) {
    if (!ok(a)) continue;
    if (!confusion) confusion = &a;
    for (const auto& e : a.at("curve")) {
      loss[label(a)].push_back({e.value("epoch", 0), e.value("train_loss", 0.0)});
      if (e.contains("val_acc")) accuracy[label(a)].push_back({e.value("epoch", 0), e.at("val_acc").get<double>()});
    }
  }
  write_series(plots / "loss.dat", loss);
  write_series(plots / "accuracy.dat", accuracy);
  std::string matrix;
  if (confusion)
    for (const auto& row : confusion->at("confusion_matrix")) {
      for (const auto& v : row) matrix += std::to_string(v.get<long long>()) + " ";
      matrix += "\n";
    }
  write_file_atomically(plots / "confusion.dat", matrix);

  const auto blocks = [](const auto& m) { return std::to_string(m.size()); };
  std::string gp = "set terminal pngcairo size 900,540 font ',11'\nset grid\nset key left top\n";
  gp += "set output 'speedup.png'\nset title 'Training speedup S(p) = T(1)/T(p), same global batch'\nset xlabel 'cores used (ranks x threads)'\n"
        "set ylabel 'speedup'\nset xrange [1:" + std::to_string(std::max(2, max_workers)) + "]\nset yrange [0:*]\n" +
        (max_workers <= 16 ? "set xtics 1\n" : "") +
        "plot x title 'ideal' dt 2 lc 'gray'" + (speedup.empty() ? "" : ", for [i=0:" + blocks(speedup) + "-1] 'speedup.dat' index i using 1:2 with linespoints title columnheader(1)") + "\n";
  gp += "set output 'efficiency.png'\nset title 'Efficiency E(p) = S(p)/p'\nset ylabel 'efficiency'\nset yrange [0:1.2]\n"
        "plot 1 title 'ideal' dt 2 lc 'gray'" + (efficiency.empty() ? "" : ", for [i=0:" + blocks(efficiency) + "-1] 'efficiency.dat' index i using 1:2 with linespoints title columnheader(1)") + "\n";
  gp += "set output 'throughput.png'\nset title 'Training images/s by configuration'\nset autoscale\nset xrange [*:*]\nset yrange [0:*]\n"
        "unset xlabel\nset xtics autofreq\nset ylabel 'images/s'\nset style data histograms\nset style histogram clustered gap 1\n"
        "set style fill solid 0.8 border -1\nset xtics rotate by -30\nset key right top\n"
        "plot 'throughput.dat' using 2:xtic(1) title 'histotrain'" + std::string(any_peer ? ", '' using 3 title 'Python peer'" : "") + "\n"
        "set xtics norotate\nset style data linespoints\nset key left top\n";
  if (!decode.empty())
    gp += "set output 'decode.png'\nset title 'JPEG decode + resize speedup'\nset xlabel 'workers'\nset ylabel 'speedup'\n"
          "set xrange [1:*]\nset yrange [0:*]\nplot x title 'ideal' dt 2 lc 'gray', for [i=0:" + blocks(decode) +
          "-1] 'decode.dat' index i using 1:2 with linespoints title columnheader(1)\n";
  if (!loss.empty())
    gp += "set output 'curves.png'\nset multiplot layout 1,2 title 'Time-to-accuracy runs'\nset xlabel 'epoch'\nset xrange [*:*]\n"
          "set yrange [0:*]\nset title 'training loss'\nset ylabel 'loss'\nplot for [i=0:" + blocks(loss) +
          "-1] 'loss.dat' index i using 1:2 with linespoints title columnheader(1)\nset title 'validation accuracy'\n"
          "set ylabel 'accuracy'\nset yrange [0:1]\n" + (accuracy.empty() ? "plot NaN notitle\n" : "plot for [i=0:" + blocks(accuracy) +
          "-1] 'accuracy.dat' index i using 1:2 with linespoints title columnheader(1)\n") + "unset multiplot\n";
  if (confusion)
    gp += "set output 'confusion.png'\nset title " + script_literal("Confusion matrix, " + label(*confusion) + " (rows: truth)") +
          "\nunset grid\n"
          "set xlabel 'predicted'\nset ylabel 'truth'\nset autoscale\nset yrange [*:*] reverse\nset palette defined (0 'white', 1 'dark-blue')\n"
          "plot 'confusion.dat' matrix with image notitle, '' matrix using 1:2:(sprintf('%d', $3)) with labels notitle\n";
  write_file_atomically(plots / "plots.gp", gp);
  // Started from its words in the plots folder, never through a shell: the folder's name is data.
  int status = 0;
  try {
    status = run_process({"gnuplot", "plots.gp"}, plots / "plots.log", plots);
  } catch (const Error&) {
    markdown += "\n(gnuplot is not installed: no plots. `apt-get install gnuplot-nox`, then `histotrain report` draws them.)\n";
    return false;
  }
  if (status != 0) {
    markdown += "\n(gnuplot failed: see plots/plots.log.)\n";
    return false;
  }
  markdown += "\n![speedup](plots/speedup.png) ![efficiency](plots/efficiency.png)\n\n![images/s](plots/throughput.png)\n";
  if (!decode.empty()) markdown += "\n![decoding](plots/decode.png)\n";
  if (!loss.empty()) markdown += "\n![curves](plots/curves.png)\n";
  if (confusion) markdown += "\n![confusion matrix](plots/confusion.png)\n";
  return true;
}

std::string csv_text(const nlohmann::json& results) {
  std::string csv = "study,program,config,method,ranks,threads,workers,device,amp,channels_last,status,images_per_s,"
                    "images_per_s_min,images_per_s_max,speedup,efficiency,epoch_s_estimate,peak_rss_mib,vs_peer\n";
  for (const auto& r : results.at("training")) {
    csv += study_of(r) + "," + r.value("program", "") + "," + r.value("config", "") + "," + r.value("method", "") + "," +
           std::to_string(r.value("ranks", 1)) + "," + std::to_string(r.value("threads", 1)) + "," +
           std::to_string(r.value("workers", 1)) + "," + r.value("device", "") + "," + r.value("amp", "") + "," +
           (r.value("channels_last", false) ? "1" : "0") + "," + r.value("status", "");
    for (const char* key : {"images_per_s", "images_per_s_min", "images_per_s_max", "speedup", "efficiency",
                            "epoch_s_estimate", "peak_rss_mib", "vs_peer"})
      csv += "," + (r.contains(key) && r.at(key).is_number() ? fixed(r.at(key).get<double>(), 4) : std::string());
    csv += "\n";
  }
  return csv;
}

}  // namespace

bool write_report(const nlohmann::json& raw, const std::filesystem::path& folder) {
  const nlohmann::json results = derive_figures(raw);
  std::filesystem::create_directories(folder);
  std::string md = "# Scaling study\n\n" + machine_lines(results) + "\n## Training throughput\n\n" +
                   training_table(results.at("training")) +
                   "\nS: images/s over the same program's serial run (1 rank, 1 thread) of the same study; E = S / "
                   "cores used (CPU runs only). Epoch (est.): the training split's images at the median rate. Timers: "
                   "histotrain's `train_s` covers the training steps from the warm tile cache (batch assembly, "
                   "forward, backward, optimizer, first step included; no decoding, validation or checkpoints); the "
                   "Python peer's covers its loop, PIL decoding in one DataLoader worker included. Peak RSS: rank 0's.\n";
  md += "\n## Time to accuracy\n\nValidation on whole held-out source groups (the default split), after every epoch; "
        "the run stops at the target. Time to target: training time until the first epoch whose validation accuracy "
        "reached it.\n\n" + accuracy_table(results.at("accuracy"));
  md += "\n## Data loading\n\nDecode + resize of real tiles (libjpeg-turbo with DCT scaling, antialiased resize), by "
        "threads in one process and by separate processes (`histotrain decode-bench`, 1 thread each, started "
        "together; wall time to the last one's end, process start-up included).\n\n" + decode_table(results.at("decode"));
  md += "\n## Plots\n";
  const bool drawn = draw_plots(results, folder, md);
  write_file_atomically(folder / "report.md", md);
  write_file_atomically(folder / "results.csv", csv_text(results));
  return drawn;
}

}  // namespace histotrain
