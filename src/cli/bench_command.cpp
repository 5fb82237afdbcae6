// histotrain bench: the scaling study on this machine; histotrain report: its report, redrawn or
// merged from saved studies; histotrain decode-bench: one worker of the data-loading study.
#include <cstdio>
#include <fstream>
#include <thread>

#include "bench/study_plan.h"
#include "bench/study_report.h"
#include "bench/decode_timing.h"
#include "bench/study_runner.h"
#include "cli/commands.h"
#include "core/compat.h"
#include "util/errors.h"
#include "util/files.h"
#include "util/json_file.h"
#include "util/json_text.h"

namespace histotrain {

namespace {

struct BenchOptions {
  StudyOptions study;
  std::string plan;
  bool print_plan = false;
};

int run_bench(BenchOptions& o) {
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  StudyPlan plan;
  try {
    plan = o.plan.empty() ? default_plan(cores, compat::cuda_available()) : plan_from_json(read_json_file(o.plan));
  } catch (const UsageError& e) {
    throw UsageError(o.plan + ": " + e.what());  // "PLAN.json: plan: 'steps' has the wrong type: ..."
  }
  if (o.print_plan) {
    std::printf("%s\n", json_text(to_json(plan), 2).c_str());
    return 0;
  }
  if (o.study.data.empty() || o.study.out.empty()) throw UsageError("bench needs --data and --out (or --print-plan)");
  if (fs::exists(fs::path(o.study.out) / "results.json"))
    throw Error(o.study.out + " already holds a study; choose another --out (histotrain report redraws a saved one)");
  ensure_writable_dir(o.study.out);
  if (!o.study.peer.empty() && !fs::exists(o.study.peer)) throw UsageError("--peer: no such file: " + o.study.peer);
  const nlohmann::json results = run_study(plan, o.study);
  const bool plots = write_report(results, o.study.out);
  std::fprintf(stderr, "study written to %s (results.json, results.csv, report.md%s)\n", o.study.out.c_str(),
               plots ? ", plots/" : "");
  return 0;
}

int run_report(const std::vector<std::string>& studies, std::string out) {
  std::vector<nlohmann::json> loaded;
  std::vector<std::string> labels;
  for (const auto& s : studies) {
    loaded.push_back(read_json_file(fs::path(s) / "results.json"));
    labels.push_back(fs::path(s).filename().empty() ? fs::path(s).parent_path().filename().string()
                                                    : fs::path(s).filename().string());
  }
  if (out.empty()) {
    if (studies.size() > 1) throw UsageError("report: several studies are merged into --out FOLDER");
    out = studies.front();
  }
  const std::string source = studies.size() == 1 ? (fs::path(studies.front()) / "results.json").string()
                                                 : "the studies' results.json";
  bool plots = false;
  try {
    const nlohmann::json results = studies.size() == 1 ? loaded.front() : merge_studies(loaded, labels);
    plots = write_report(results, out);
  } catch (const nlohmann::json::exception& e) {
    // A field of another type than a study writes: the file is named with nlohmann's words
    // naming the field ("key 'study' not found", "type must be number, but is string").
    throw Error(source + " is not a study's results as histotrain writes them: " + e.what());
  }
  std::fprintf(stderr, "report written to %s/report.md%s\n", out.c_str(), plots ? " with plots" : " (no plots)");
  return 0;
}

}  // namespace

Command add_bench_command(CLI::App& root) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* app = root.add_subcommand("bench", "Run the scaling study on this machine: every method, the same workload");
  app->add_option("--data", o->study.data, "Dataset root (real tiles)");
  app->add_option("--out", o->study.out, "Study folder: results.json, results.csv, report.md, plots/, runs/");
  app->add_option("--plan", o->plan, "Plan JSON (default: one made for this machine; --print-plan shows it)");
  app->add_flag("--print-plan", o->print_plan, "Print the plan and exit");
  app->add_option("--groups", o->study.groups, "Groups CSV for the validation split (default: found from the pixels)");
  app->add_option("--cache-dir", o->study.cache_dir, "Tile cache (default: STUDY/cache)");
  app->add_option("--peer", o->study.peer, "torch_reference.py: the Python peer run with the same settings");
  app->add_option("--peer-python,--python", o->study.peer_pythons,
                  "Python with torch and torchvision that runs the peer; repeat it for several side by side (e.g. "
                  "/usr/bin/python3 and bench/torch2_env.sh's)")
      ->capture_default_str();
  app->add_flag("--peer-compile", o->study.peer_compile,
                "Also run the peer under torch.compile with each --peer-python that has PyTorch 2.x");
  app->add_flag("--quiet", o->study.quiet, "No progress lines");
  return {app, [o] { return run_bench(*o); }};
}

Command add_report_command(CLI::App& root) {
  auto studies = std::make_shared<std::vector<std::string>>();
  auto out = std::make_shared<std::string>();
  CLI::App* app = root.add_subcommand("report", "Redraw a study's report, or merge several studies into one");
  app->add_option("studies", *studies, "Study folders (each with results.json)")->required();
  app->add_option("--out", *out, "Where the merged report goes (default: the study itself, when one)");
  return {app, [studies, out] { return run_report(*studies, *out); }};
}

Command add_decode_bench_command(CLI::App& root) {
  auto list = std::make_shared<std::string>();
  auto size = std::make_shared<int>(64);
  auto threads = std::make_shared<int>(1);
  CLI::App* app = root.add_subcommand("decode-bench", "Decode the images of a list file (one worker of bench's data-loading study; bench/decode_formats.sh)");
  app->add_option("--list", *list, "File with one image path per line")->required();
  app->add_option("--size", *size, "Tile side, px")->capture_default_str();
  app->add_option("--threads", *threads, "Decode threads")->capture_default_str();
  return {app, [list, size, threads] {
            std::printf("%s\n", json_text(decode_listed_images(*list, *size, *threads)).c_str());
            return 0;
          }};
}

}  // namespace histotrain
