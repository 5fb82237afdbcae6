// A researcher's own data, as it arrives: tiles in one flat folder, a CSV of
// filename,diagnosis,patient_id beside it. Trained, evaluated per tile and per patient, with
// operating points, pictures, TensorBoard logs, a run folder a laptop can hold, and
// cross-validation that keeps a patient's tiles together.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>

#include "cli_harness.h"
#include "test_util.h"
#include "util/csv.h"

namespace histotrain {
namespace {

namespace fs = std::filesystem;
using testing::read_json;
using testing::read_jsonl;
using testing::read_text;
using testing::run_histotrain;
using testing::ScratchDir;

struct FlatSet {
  fs::path folder, labels;
  size_t tiles = 0, patients = 0;
};

// The synthetic tiles copied into one folder under new names, and labels.csv outside it naming
// each file's diagnosis and patient (the tile's source group: its near-copies are one patient's).
FlatSet flat_set(const fs::path& dir) {
  const fs::path data = testing::synth_data();
  std::map<std::string, std::string> group_of;
  for (const auto& row : parse_csv(read_text(data / "groups.csv"), "groups.csv"))
    if (row.line > 1) group_of[row.fields[0]] = row.fields[2];
  FlatSet set{dir / "tiles", dir / "labels.csv"};
  fs::create_directories(set.folder);
  std::string csv = "filename,diagnosis,patient_id\n";
  std::set<std::string> patients;
  for (const auto& entry : fs::recursive_directory_iterator(data)) {
    if (entry.path().extension() != ".jpeg") continue;
    const std::string name = "slide_" + std::to_string(set.tiles++) + ".jpeg";
    fs::copy_file(entry.path(), set.folder / name);
    const std::string patient = "patient-" + group_of.at(entry.path().filename().string());
    patients.insert(patient);
    csv += name + "," + entry.path().parent_path().filename().string() + "," + patient + "\n";
  }
  std::ofstream(set.labels) << csv;
  set.patients = patients.size();
  return set;
}

const std::string kColumns = " --columns path=filename,label=diagnosis,group=patient_id";

std::string manifest_args(const FlatSet& set) {
  return " --manifest " + set.labels.string() + kColumns + " --root " + set.folder.string();
}

TEST(OwnData, AFlatFolderIsToldAtOnceToUseAManifest) {
  ScratchDir dir;
  const FlatSet set = flat_set(dir.path());
  const auto refused = run_histotrain("train --data " + set.folder.string() + " --out " + (dir / "run").string());
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("directly, not in class folders"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("--manifest"), std::string::npos) << refused.err;
  EXPECT_EQ(refused.err.find("decod"), std::string::npos) << "said before any decoding:\n" << refused.err;
}

// TensorBoard's own reader finds the epochs' figures in the run's event file, as metrics.jsonl
// has them.
void expect_tensorboard_reads_the_epochs(const fs::path& run, const std::vector<nlohmann::json>& metrics) {
  const std::string tb = testing::test_venv_python("tensorboard");
  if (tb.empty()) {
    EXPECT_FALSE(testing::packages_required()) << "no build-venv with tensorboard: run.sh test makes it";
  } else {
    const auto read = testing::run_program(tb, {{HISTOTRAIN_SOURCE_DIR "/tests/parity/tensorboard_events.py", run.string()}});
    ASSERT_EQ(read.exit_code, 0) << read.err;
    const auto scalars = nlohmann::json::parse(read.out);
    ASSERT_EQ(scalars["val/acc"].size(), 3u) << read.out;
    for (size_t e = 0; e < 3; ++e) {
      EXPECT_EQ(scalars["val/acc"][e][0], metrics[e]["step"]);
      EXPECT_NEAR(scalars["val/acc"][e][1].get<double>(), metrics[e]["val_acc"].get<double>(), 1e-6);
    }
    EXPECT_TRUE(scalars.contains("train/loss"));
  }
}

TEST(OwnData, TrainEvaluatePerPatientExportAndKeepTheRunFolderSmall) {
  ScratchDir dir;
  const FlatSet set = flat_set(dir.path());
  const fs::path run = dir / "run";
  const auto trained = run_histotrain("train" + manifest_args(set) + " --image-size 32 --batch-size 16 --epochs 3 " +
                                      "--threads 2 --quiet --keep best --tensorboard --out " + run.string());
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  EXPECT_TRUE(trained.out.empty()) << "--quiet prints no JSON: " << trained.out.substr(0, 200);

  // --keep best: model.safetensors holds the weights of the best validation, and says so.
  const auto metrics = read_jsonl(run / "metrics.jsonl");
  ASSERT_EQ(metrics.size(), 3u);
  size_t best = 0;
  for (size_t e = 1; e < metrics.size(); ++e)
    if (metrics[e]["val_acc"].get<double>() > metrics[best]["val_acc"].get<double>()) best = e;
  const auto meta = read_json(run / "checkpoint.json");
  EXPECT_EQ(meta["weights"]["kept"], "best");
  EXPECT_EQ(meta["weights"]["epoch"], static_cast<int>(best) + 1);
  EXPECT_EQ(meta["epoch"], 3) << "--resume goes on from the last state";
  EXPECT_TRUE(metrics.back().contains("val_group_acc"));

  // The finished run holds one copy of each file: at most 3x the weights, no previous/.
  uintmax_t bytes = 0;
  for (const auto& entry : fs::recursive_directory_iterator(run)) bytes += entry.is_regular_file() ? entry.file_size() : 0;
  EXPECT_LE(bytes, 3 * fs::file_size(run / "model.safetensors") + (4 << 20)) << "run folder bytes";
  EXPECT_FALSE(fs::exists(run / "previous"));

  expect_tensorboard_reads_the_epochs(run, metrics);

  // Evaluation per tile and per patient, from a test list with absolute paths.
  std::string test_csv = "filename,diagnosis,patient_id\n";
  size_t rows = 0;
  for (const auto& row : parse_csv(read_text(set.labels), "labels.csv"))
    if (row.line > 1 && row.line % 3 == 0) {
      test_csv += csv_field((set.folder / row.fields[0]).string()) + "," + row.fields[1] + "," + row.fields[2] + "\n";
      ++rows;
    }
  std::ofstream(dir / "test.csv") << test_csv;
  const fs::path preds = dir / "out" / "test_predictions.csv", report = dir / "report";
  fs::create_directories(preds.parent_path());
  const auto evaluated = run_histotrain("eval --checkpoint " + run.string() + " --manifest " + (dir / "test.csv").string() +
                                        kColumns + " --threshold lung_aca=0.3 --target-sensitivity lung_n=0.9 " +
                                        "--bootstrap 200 --predictions " + preds.string() + " --report " +
                                        report.string() + " --json --quiet");
  ASSERT_EQ(evaluated.exit_code, 0) << evaluated.err;
  const auto r = nlohmann::json::parse(evaluated.out);
  EXPECT_EQ(r["images"], rows);
  ASSERT_TRUE(r.contains("by_group"));
  EXPECT_EQ(r["by_group"]["confidence_intervals"]["unit"], "group");
  EXPECT_LT(r["by_group"]["units"].get<size_t>(), rows) << "a patient's tiles are one case";
  for (const char* metric : {"accuracy", "balanced_accuracy", "macro_auc"})
    EXPECT_TRUE(r["by_group"]["confidence_intervals"][metric].is_array()) << metric;
  ASSERT_EQ(r["operating_points"].size(), 2u);
  EXPECT_GE(r["operating_points"][1]["sensitivity"].get<double>(), 0.9);
  for (const char* m : {"sensitivity", "specificity", "ppv", "npv"})
    EXPECT_TRUE(r["operating_points"][0]["confidence_intervals"].contains(m)) << m;
  const auto group_rows = parse_csv(read_text(dir / "out" / "test_predictions.groups.csv"), "groups csv");
  EXPECT_EQ(group_rows.size(), r["by_group"]["units"].get<size_t>() + 1);
  EXPECT_EQ(group_rows[0].fields[0], "group");
  for (const char* png : {"confusion.png", "confusion_by_group.png", "roc.png", "reliability.png"})
    EXPECT_GT(fs::exists(report / png) ? fs::file_size(report / png) : 0, 5000u) << png;
  const std::string md = read_text(report / "report.md");
  EXPECT_NE(md.find("## Per group"), std::string::npos);
  EXPECT_NE(md.find("Operating points"), std::string::npos);

  // The predictions file reads back as a manifest (path,label,group), absolute paths and all.
  const auto again = run_histotrain("eval --checkpoint " + run.string() + " --manifest " + preds.string() +
                                    " --bootstrap 0 --json --quiet");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(nlohmann::json::parse(again.out)["accuracy"], r["accuracy"]);

  // A label the model does not know is named as a label, not a folder.
  std::ofstream(dir / "other.csv") << "path,label\n" << (set.folder / "slide_0.jpeg").string() << ",mesothelioma\n";
  const auto unknown = run_histotrain("eval --checkpoint " + run.string() + " --manifest " + (dir / "other.csv").string());
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("label 'mesothelioma' is not one of the model's classes"), std::string::npos) << unknown.err;
}

// predict says how many rows it wrote and how many of them are errors; an entry that cannot even
// be listed (a link loop) is a row with its error, and the others are predicted.
TEST(OwnData, PredictCountsRowsAndUnreadableImages) {
  ScratchDir dir;
  const FlatSet set = flat_set(dir.path());
  const fs::path run = dir / "run";
  ASSERT_EQ(run_histotrain("train" + manifest_args(set) + " --image-size 32 --batch-size 16 --epochs 1 --threads 2 " +
                           "--quiet --out " + run.string()).exit_code, 0);
  const fs::path in = dir / "in";
  fs::create_directories(in);
  fs::copy_file(set.folder / "slide_0.jpeg", in / "a.jpeg");
  std::ofstream(in / "b.png") << "not a PNG";
  fs::create_symlink("loop", in / "loop");  // a link to itself
  const auto predicted = run_histotrain("predict --checkpoint " + run.string() + " --csv " + (dir / "p.csv").string() +
                                        " " + in.string() + " " + (set.folder / "slide_1.jpeg").string());
  EXPECT_EQ(predicted.exit_code, 0) << predicted.err;
  EXPECT_NE(predicted.err.find("wrote 4 rows"), std::string::npos) << predicted.err;
  EXPECT_NE(predicted.err.find("2 predictions, 2 unreadable"), std::string::npos) << predicted.err;
  EXPECT_EQ(parse_csv(read_text(dir / "p.csv"), "p.csv").size(), 5u);
}

// cv on the same CSV: folds of whole patients, per-patient metrics beside per-tile ones, bounded
// intervals, and fold models kept only when asked.
TEST(OwnData, CrossValidationPerPatientKeepsFoldModelsOnlyWhenAsked) {
  ScratchDir dir;
  const FlatSet set = flat_set(dir.path());
  const std::string args = "cv --folds 2" + manifest_args(set) +
                           " --image-size 32 --batch-size 16 --epochs 1 --threads 2 --bootstrap 50 --quiet --out ";
  const auto cv = run_histotrain(args + (dir / "cv").string());
  ASSERT_EQ(cv.exit_code, 0) << cv.err;
  const auto report = read_json(dir / "cv" / "cv.json");
  for (const char* metric : {"accuracy", "group_accuracy", "group_balanced_accuracy", "ece"}) {
    const auto& s = report["summary"][metric];
    ASSERT_TRUE(s["ci"].is_array()) << metric;
    EXPECT_GE(s["ci"][0].get<double>(), 0.0) << metric;
    EXPECT_LE(s["ci"][1].get<double>(), 1.0) << metric;
  }
  EXPECT_NE(report["ci_covers"].get<std::string>().find("logit"), std::string::npos);
  EXPECT_NE(cv.out.find("Per group"), std::string::npos) << cv.out;
  for (int fold = 1; fold <= 2; ++fold) {
    const fs::path f = dir / "cv" / ("fold-" + std::to_string(fold));
    EXPECT_TRUE(fs::exists(f / "summary.json"));
    EXPECT_FALSE(fs::exists(f / "model.safetensors")) << "fold models only with --keep-models";
  }
  ASSERT_EQ(run_histotrain(args + (dir / "kept").string() + " --keep-models").exit_code, 0);
  EXPECT_TRUE(fs::exists(dir / "kept" / "fold-1" / "model.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "kept" / "folds.png"));
}

}  // namespace
}  // namespace histotrain
