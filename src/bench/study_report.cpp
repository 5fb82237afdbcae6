#include "bench/study_report.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <map>
#include <sstream>
#include <tuple>

#include "bench/study_plots.h"
#include "bench/study_rows.h"
#include "util/display_text.h"
#include "util/errors.h"
#include "util/files.h"
#include "util/process.h"
#include "util/progress.h"

namespace histotrain {

namespace {

using study_rows::fixed;
using study_rows::label;
using study_rows::ok;
using study_rows::study_of;

// The rows by (study, program, configuration), the first ok one of each: looked up once per row,
// so a merged report of thousands of rows takes linear time, not quadratic.
using RowKey = std::tuple<std::string, std::string, std::string>;
RowKey key_of(const nlohmann::json& r) { return {study_of(r), r.value("program", ""), r.value("config", "")}; }

std::map<RowKey, const nlohmann::json*> index_ok_rows(const nlohmann::json& rows) {
  std::map<RowKey, const nlohmann::json*> index;
  for (const auto& r : rows)
    if (ok(r)) index.emplace(key_of(r), &r);
  return index;
}

// images/s of `program`'s run of `config` in `study`; 0 when absent or not ok.
double rate_of(const std::map<RowKey, const nlohmann::json*>& index, const std::string& study,
               const std::string& program, const std::string& config) {
  const auto found = index.find({study, program, config});
  return found == index.end() ? 0 : found->second->value("images_per_s", 0.0);
}

}  // namespace

nlohmann::json derive_figures(const nlohmann::json& results) {
  nlohmann::json out = results;
  auto& rows = out["training"];
  const nlohmann::json original = rows;  // the index points into this copy, which is not modified
  const auto index = index_ok_rows(original);
  for (auto& r : rows) {
    if (!ok(r)) continue;
    const double base = rate_of(index, study_of(r), r.value("program", ""), "serial");
    const double rate = r.value("images_per_s", 0.0);
    if (base > 0) {
      r["speedup"] = rate / base;
      // Efficiency per core; a GPU run's speedup over one CPU core has no such meaning.
      if (r.value("device", "cpu") == "cpu") r["efficiency"] = rate / base / r.value("workers", 1);
    }
    if (r.value("train_images", 0) > 0) r["epoch_s_estimate"] = r.value("train_images", 0) / rate;
    if (r.value("program", "") == "histotrain") {
      const double peer = rate_of(index, study_of(r), "peer", r.value("config", ""));
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

// A string field of a row as a markdown cell (names come from other people's files).
std::string text(const nlohmann::json& r, const char* key) {
  const auto it = r.find(key);
  return it != r.end() && it->is_string() ? markdown_cell(it->get<std::string>()) : "";
}

std::string cell(const nlohmann::json& r, const char* key, int digits, const char* suffix = "") {
  if (!r.contains(key) || r.at(key).is_null()) return "";
  return fixed(r.at(key).get<double>(), digits) + suffix;
}

std::string percent(const nlohmann::json& r, const char* key) {
  if (!r.contains(key)) return "";
  return fixed(100 * r.at(key).get<double>(), 0) + "%";
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
       << markdown_cell(s.value("data", "")) << "; " << s.value("date", "") << "; the study took "
       << format_duration(s.value("seconds", 0.0)) << ".\n";
    const auto& p = s.at("plan");
    md << "  Plan: " << p.value("arch", "") << ", " << p.value("image_size", 0) << " px, global batch "
       << p.value("global_batch", 0) << " in every configuration, " << p.value("steps", 0) << " steps per run, "
       << p.value("repeats", 0) << " runs per configuration (median, min–max), after one warm-up run that "
       << "fills the tile cache.\n";
  };
  if (results.contains("studies"))
    for (const auto& s : results.at("studies")) describe(s, "**" + markdown_cell(s.value("label", "")) + "**: ");
  else
    describe(results.at("study"), "");
  return md.str();
}

// The peer programs among the rows, in the order they first appear ("peer" first when there).
std::vector<std::string> peer_programs(const nlohmann::json& rows) {
  std::vector<std::string> programs;
  for (const auto& r : rows) {
    const std::string program = r.value("program", "");
    if (program.rfind("peer", 0) == 0 && std::find(programs.begin(), programs.end(), program) == programs.end())
      programs.push_back(program);
  }
  return programs;
}

// A peer row's cell: images/s (min–max), with a compiled peer's compile time.
std::string peer_cell(const nlohmann::json& p) {
  if (!ok(p)) return text(p, "status") + ": " + text(p, "reason");
  std::string out = cell(p, "images_per_s", 1) + " (" + cell(p, "images_per_s_min", 1) + "–" + cell(p, "images_per_s_max", 1) + ")";
  if (p.contains("compile_s")) out += ", compiling " + cell(p, "compile_s", 0, " s");
  return out;
}

std::string training_table(const nlohmann::json& rows) {
  const std::vector<std::string> peers = peer_programs(rows);
  std::ostringstream md;
  md << "| configuration | method | ranks x threads | device | histotrain images/s (min–max) | S | E | epoch (est.) | peak RSS |";
  for (const auto& program : peers) md << " " << markdown_cell(program == "peer" ? "Python peer" : "Python " + program) << " images/s |";
  md << " histotrain / peer |\n| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |";
  for (size_t k = 0; k <= peers.size(); ++k) md << " ---: |";
  md << "\n";
  std::map<RowKey, const nlohmann::json*> peer_rows;  // each configuration's peer rows, found once
  for (const auto& p : rows)
    if (p.value("program", "").rfind("peer", 0) == 0) peer_rows.emplace(key_of(p), &p);
  for (const auto& r : rows) {
    if (r.value("program", "") != "histotrain") continue;
    md << "| " << markdown_cell(label(r)) << " | " << text(r, "method") << " | " << r.value("ranks", 1) << " x "
       << r.value("threads", 1) << " | " << text(r, "device") << (r.value("amp", "none") != "none" ? " " + text(r, "amp") : "")
       << (r.value("channels_last", false) ? " CL" : "") << " | ";
    if (!ok(r)) {
      md << text(r, "status") << ": " << text(r, "reason") << " | | | | |";
      for (size_t k = 0; k <= peers.size(); ++k) md << " |";
      md << "\n";
      continue;
    }
    md << cell(r, "images_per_s", 1) << " (" << cell(r, "images_per_s_min", 1) << "–" << cell(r, "images_per_s_max", 1)
       << ") | " << cell(r, "speedup", 2) << " | " << percent(r, "efficiency") << " | " << cell(r, "epoch_s_estimate", 0, " s")
       << " | " << cell(r, "peak_rss_mib", 0, " MiB") << " |";
    for (const auto& program : peers) {
      const auto found = peer_rows.find({study_of(r), program, r.value("config", "")});
      md << " " << (found != peer_rows.end() ? peer_cell(*found->second) : "") << " |";
    }
    md << " " << cell(r, "vs_peer", 2, "x") << " |\n";
  }
  return md.str();
}

std::string accuracy_table(const nlohmann::json& rows) {
  std::ostringstream md;
  md << "| configuration | epochs run | validation accuracy | macro-F1 | time to target | training time |\n"
     << "| --- | ---: | ---: | ---: | ---: | ---: |\n";
  for (const auto& r : rows) {
    md << "| " << markdown_cell(label(r)) << " | ";
    if (!ok(r)) {
      md << text(r, "status") << ": " << text(r, "reason") << " | | | | |\n";
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
    md << "| " << (study_of(d).empty() ? "" : markdown_cell(study_of(d)) + ": ") << text(d, "mode") << " | " << d.value("workers", 0)
       << " | ";
    if (!ok(d)) {
      md << text(d, "status") << ": " << text(d, "reason") << " | | | |\n";
      continue;
    }
    md << cell(d, "images_per_s", 0) << " | " << cell(d, "speedup", 2) << " | " << percent(d, "efficiency") << " | "
       << cell(d, "images_per_s_wall", 0) << " |\n";
  }
  return md.str();
}

// --- plots -----------------------------------------------------------------------------------

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
