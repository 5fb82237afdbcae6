// The scaling study: its plan, a tiny study end to end, the report redrawn and merged.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "bench/study_plan.h"
#include "cli_harness.h"
#include "test_util.h"
#include "util/errors.h"

namespace histotrain {
namespace {

using testing::read_json;
using testing::read_text;
using testing::run_histotrain;
using testing::ScratchDir;

// The shell word for `text` (the tests start histotrain through a shell; histotrain itself never does).
std::string shell_word(const std::string& text) {
  std::string word = "'";
  for (char ch : text) word += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return word + "'";
}

// A plan file that would have run commands through std::system is refused before anything runs.
TEST(Bench, APlanCannotRunCommands) {
  ScratchDir dir;
  const std::string data = testing::shared_synthetic_dataset(40, 96).string();
  const auto marker = dir / "PWNED";
  std::ofstream(dir / "plan.json") << nlohmann::json{
      {"arch", "resnet18 --epochs 0; touch " + marker.string() + "; exit 3 #"},
      {"configs", {{{"name", "serial"}}}}}.dump();
  const auto result = run_histotrain("bench --data " + data + " --plan " + (dir / "plan.json").string() + " --out " +
                                     (dir / "study").string());
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_FALSE(std::filesystem::exists(marker));
}

// One tiny study on synthetic tiles, shared by the tests below.
const std::filesystem::path& tiny_study() {
  static ScratchDir dir;
  static const std::filesystem::path study = [] {
    const std::string data = testing::shared_synthetic_dataset(40, 96).string();
    std::ofstream(dir / "plan.json") << R"({"image_size": 32, "global_batch": 8, "steps": 2, "repeats": 3,
      "configs": [{"name": "serial"}, {"name": "threads-2", "threads": 2}, {"name": "ranks-2", "ranks": 2},
                  {"name": "ranks-64", "ranks": 64}, {"name": "gpu", "device": "cuda"}],
      "accuracy_configs": ["serial"], "accuracy_epochs": 1, "target_acc": 0.2,
      "decode_images": 20, "decode_workers": [1, 2]})";
    const auto result = run_histotrain("bench --data " + data + " --groups " + data + "/groups.csv --plan " +
                                       (dir / "plan.json").string() + " --out " + (dir / "study").string());
    EXPECT_EQ(result.exit_code, 0) << result.err;
    EXPECT_NE(result.err.find("bench [2/"), std::string::npos) << "progress names the run and how many remain";
    EXPECT_NE(result.err.find("left)"), std::string::npos) << "and estimates the time left";
    return dir / "study";
  }();
  return study;
}

// results.csv as rows of named fields.
std::vector<std::map<std::string, std::string>> read_csv(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  std::vector<std::string> header;
  std::stringstream h(line);
  for (std::string f; std::getline(h, f, ',');) header.push_back(f);
  std::vector<std::map<std::string, std::string>> rows;
  while (std::getline(in, line)) {
    std::map<std::string, std::string> row;
    std::stringstream fields(line);
    std::string f;
    for (size_t i = 0; i < header.size() && std::getline(fields, f, ','); ++i) row[header[i]] = f;
    rows.push_back(row);
  }
  return rows;
}

TEST(Bench, TinyPlanRunsEndToEndWithConsistentFigures) {
  const auto study = tiny_study();
  const auto rows = read_csv(study / "results.csv");
  std::map<std::string, std::map<std::string, std::string>> by_config;
  for (const auto& r : rows) by_config[r.at("config")] = r;
  ASSERT_EQ(by_config.size(), 5u) << "every configuration is reported";
  EXPECT_EQ(std::stod(by_config.at("serial").at("speedup")), 1.0) << "the baseline's speedup is 1";
  for (const auto& [name, r] : by_config) {
    if (r.at("status") != "ok") continue;
    const double s = std::stod(r.at("speedup")), e = std::stod(r.at("efficiency")), p = std::stod(r.at("workers"));
    EXPECT_NEAR(e, s / p, 1e-3) << name;
    EXPECT_LE(std::stod(r.at("images_per_s_min")), std::stod(r.at("images_per_s"))) << name;
    EXPECT_GE(std::stod(r.at("images_per_s_max")), std::stod(r.at("images_per_s"))) << name;
  }
  EXPECT_EQ(by_config.at("threads-2").at("status"), "ok");
  EXPECT_EQ(by_config.at("ranks-2").at("status"), "ok");
  EXPECT_EQ(by_config.at("ranks-64").at("status"), "skipped") << "more ranks than cores: skipped, not crashed";
  EXPECT_EQ(by_config.at("gpu").at("status"), "skipped");
  const auto results = read_json(study / "results.json");
  for (const auto& r : results["training"])
    if (r["config"] == "gpu") EXPECT_NE(r["reason"].get<std::string>().find("CUDA"), std::string::npos);
  for (const auto& r : results["training"])
    if (r["status"] == "ok") EXPECT_EQ(r["images_per_s_runs"].size(), 3u) << "three repeats";
  ASSERT_EQ(results["accuracy"].size(), 1u);
  EXPECT_EQ(results["accuracy"][0]["status"], "ok");
  EXPECT_EQ(results["decode"].size(), 4u) << "threads and processes, 1 and 2 workers";
  const std::string report = read_text(study / "report.md");
  for (const char* name : {"serial", "threads-2", "ranks-2", "ranks-64", "needs 64 cores", "Time to accuracy", "Data loading"})
    EXPECT_NE(report.find(name), std::string::npos) << name;
}

TEST(Bench, ReportIsRedrawnFromSavedResultsAndMerged) {
  const auto study = tiny_study();
  ScratchDir dir;
  for (const char* name : {"laptop", "node"}) {
    std::filesystem::create_directories(dir / name);
    std::filesystem::copy_file(study / "results.json", dir / name / "results.json");
  }
  const auto redraw = run_histotrain("report " + (dir / "laptop").string());
  ASSERT_EQ(redraw.exit_code, 0) << redraw.err;
  EXPECT_EQ(read_text(dir / "laptop/report.md"), read_text(study / "report.md")) << "same results, same report";
  EXPECT_EQ(read_text(dir / "laptop/results.csv"), read_text(study / "results.csv"));
  const auto merged = run_histotrain("report " + (dir / "laptop").string() + " " + (dir / "node").string() + " --out " +
                                     (dir / "both").string());
  ASSERT_EQ(merged.exit_code, 0) << merged.err;
  const std::string report = read_text(dir / "both/report.md");
  EXPECT_NE(report.find("laptop: threads-2"), std::string::npos) << report;
  EXPECT_NE(report.find("node: threads-2"), std::string::npos);
  EXPECT_EQ(run_histotrain("report " + (dir / "laptop").string() + " " + (dir / "node").string()).exit_code, 2)
      << "several studies need --out";
  EXPECT_EQ(run_histotrain("report " + (dir / "nothing").string()).exit_code, 1);
}

// Names from someone else's results.json, and the study folder's own name, reach the plots as
// data: a name built to end gnuplot's string and run a command runs nothing.
TEST(Bench, ReportOfHostileNamesRunsNoCommand) {
  const auto study = tiny_study();
  ScratchDir dir;
  const auto marker = dir / "PWNED";
  const auto folder = dir / "sq'$(touch PWNED)'";
  std::filesystem::create_directories(folder);
  nlohmann::json results = read_json(study / "results.json");
  const std::string hostile = "x'\nsystem \"touch " + marker.string() + "\"\n#\"";
  for (const char* part : {"training", "accuracy"})
    for (auto& row : results[part]) row["config"] = hostile + row.value("config", "");
  std::ofstream(folder / "results.json") << results.dump();
  testing::Invocation call;
  call.args = {"report", folder.string()};
  call.cwd = dir.path();  // a PWNED written relative to the working folder would land here
  const auto report = testing::run_cli(call);
  ASSERT_EQ(report.exit_code, 0) << report.err;
  EXPECT_TRUE(std::filesystem::exists(folder / "plots" / "confusion.png")) << read_text(folder / "plots" / "plots.log");
  EXPECT_TRUE(std::filesystem::exists(folder / "plots" / "throughput.png"));
  EXPECT_FALSE(std::filesystem::exists(marker));
  EXPECT_FALSE(std::filesystem::exists(dir / "PWNED"));
}

// Two interpreters for the peer, the second with PyTorch 2.x and --peer-compile: three peer rows
// per configuration, each labelled by its torch, the compiled one's rate after its warm-up steps
// and its compile time apart. The interpreter here is a stand-in that answers as the peer would.
TEST(Bench, PeersOfSeveralPyTorchesRunSideBySide) {
  ScratchDir dir;
  const std::string data = testing::shared_synthetic_dataset(40, 96).string();
  const auto old_python = dir / "python1", fake = dir / "python2";
  std::ofstream(old_python) << "#!/bin/sh\nif [ \"$1\" = -c ]; then echo 1.13.0; exit 0; fi\n"
                               "echo 'RESULT {\"imgs_per_s\": 40.0}'\n";
  std::filesystem::permissions(old_python, std::filesystem::perms::owner_all);
  std::ofstream(fake) << R"(#!/bin/sh
if [ "$1" = -c ]; then echo 2.11.0+cu130; exit 0; fi
echo "$@" >> "$(dirname "$0")/calls"
case " $* " in
  *" --compile "*) echo 'RESULT {"imgs_per_s": 20.0, "imgs_per_s_after_warmup": 50.0, "steps": 10, "batch_per_rank": 8, "world": 1, "train_s": 10.0}' ;;
  *) echo 'RESULT {"imgs_per_s": 40.0, "steps": 10, "batch_per_rank": 8, "world": 1, "train_s": 2.0}' ;;
esac
)";
  std::filesystem::permissions(fake, std::filesystem::perms::owner_all);
  std::ofstream(dir / "plan.json") << R"({"image_size": 32, "global_batch": 8, "steps": 10, "repeats": 1,
      "configs": [{"name": "serial"}], "accuracy_configs": [], "decode_workers": []})";
  std::ofstream(dir / "peer.py") << "raise SystemExit('a stand-in: the interpreters below never run it')\n";
  const auto result = run_histotrain("bench --data " + data + " --groups " + data + "/groups.csv --plan " +
                                     (dir / "plan.json").string() + " --out " + (dir / "study").string() + " --peer " +
                                     (dir / "peer.py").string() + " --peer-python " + old_python.string() +
                                     " --peer-python " + fake.string() + " --peer-compile --quiet");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const nlohmann::json results = read_json(dir / "study" / "results.json");
  std::map<std::string, nlohmann::json> by_program;
  for (const auto& r : results["training"]) by_program[r.value("program", "")] = r;
  ASSERT_EQ(by_program.size(), 4u) << "histotrain, then the first interpreter eager, the second eager and compiled";
  EXPECT_EQ(by_program.at("peer")["peer_torch"], "1.13.0") << "the first interpreter's rows are plain \"peer\"";
  EXPECT_EQ(by_program.at("peer torch 2.11.0+cu130")["images_per_s"], 40.0);
  const auto& compiled = by_program.at("peer torch 2.11.0+cu130 compiled");
  EXPECT_EQ(compiled["images_per_s"], 50.0) << "after the warm-up steps";
  EXPECT_NEAR(compiled["compile_s"].get<double>(), 10.0 - 80.0 / 50.0, 1e-9) << "the time beyond the steps' own";
  EXPECT_EQ(compiled["warmup_steps"], 2);
  const std::string calls = read_text(dir / "calls");
  EXPECT_NE(calls.find("--compile --warmup-steps 2"), std::string::npos) << calls;
  const std::string report = read_text(dir / "study" / "report.md");
  EXPECT_NE(report.find("Python peer torch 2.11.0+cu130 compiled images/s"), std::string::npos) << report;
  EXPECT_NE(report.find("compiling 8 s"), std::string::npos) << report;
}

// Prefetching assembles the same batches in the same order: the run is the same.
TEST(Bench, PrefetchChangesTimingNotResults) {
  ScratchDir dir;
  const std::string data = testing::shared_synthetic_dataset(40, 96).string();
  const std::string args = "train --data " + data + " --groups " + data +
                           "/groups.csv --image-size 32 --batch-size 16 --epochs 1 --threads 2 --quiet "
                           "--conv-grad native --out ";  // the tuned gradients' way is chosen per process
  ASSERT_EQ(run_histotrain(args + (dir / "plain").string()).exit_code, 0);
  ASSERT_EQ(run_histotrain(args + (dir / "prefetch").string() + " --prefetch").exit_code, 0);
  const auto a = testing::read_jsonl(dir / "plain/metrics.jsonl"), b = testing::read_jsonl(dir / "prefetch/metrics.jsonl");
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  for (const char* key : {"train_loss", "val_loss", "val_acc"}) EXPECT_NEAR(a[0][key].get<double>(), b[0][key].get<double>(), 1e-6) << key;
}

}  // namespace
}  // namespace histotrain
