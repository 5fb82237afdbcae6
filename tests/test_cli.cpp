// End-to-end: the histotrain binary as a user runs it.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <turbojpeg.h>

#include "core/compat.h"
#include "data/jpeg.h"
#include "synth/synth.h"
#include "test_util.h"
#include "train/system_info.h"
#include "util/machine.h"

namespace histotrain {
namespace {

using testing::run_histotrain;
using testing::ScratchDir;

using testing::synth_data;
std::string groups_of(const std::string& data) { return data + "/groups.csv"; }

using testing::read_json;
using testing::read_jsonl;

// Small but real: 200 tiles, 64 px, enough steps to learn.
std::string train_args(const std::string& data, const std::filesystem::path& out, int epochs) {
  return "train --data " + data + " --groups " + groups_of(data) + " --image-size 64 --batch-size 16 --epochs " +
         std::to_string(epochs) + " --threads 2 --quiet --out " + out.string();
}

TEST(Cli, TrainLearnsWritesRunFolderThenEvalAndPredictUseIt) {
  ScratchDir dir;
  const std::string data = synth_data();
  const auto run = dir / "run";
  const auto trained = run_histotrain(train_args(data, run, 4));
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  for (const char* file : {"model.safetensors", "train_state.safetensors", "checkpoint.json", "metrics.jsonl", "summary.json"})
    EXPECT_TRUE(std::filesystem::exists(run / file)) << file;
  // A finished run keeps one copy of each file: no model.pt (histotrain export writes one), no previous/.
  EXPECT_FALSE(std::filesystem::exists(run / "model.pt"));
  EXPECT_FALSE(std::filesystem::exists(run / "previous"));
  const auto metrics = read_jsonl(run / "metrics.jsonl");
  ASSERT_EQ(metrics.size(), 4u);
  for (const char* key : {"epoch", "train_loss", "val_acc", "val_macro_f1", "train_images_per_s", "lr"})
    EXPECT_TRUE(metrics.back().contains(key)) << key;
  const auto summary = read_json(run / "summary.json");
  EXPECT_EQ(summary["val_images"].get<int>() + summary["train_images"].get<int>(), 200);
  EXPECT_GT(summary["best_val_acc"].get<double>(), 0.6) << "chance is 0.2: it should have learned";
  // ResNet-18's activations for 16 images of 64 px are about 20 MiB.
  EXPECT_GT(summary["step_held_peak_mib"].get<double>(), 10);
  EXPECT_LT(summary["step_held_peak_mib"].get<double>(), summary["peak_rss_mib"].get<double>());
  EXPECT_LT(metrics.back()["train_loss"].get<double>(), metrics.front()["train_loss"].get<double>());

  const auto eval = run_histotrain("eval --checkpoint " + run.string() + " --data " + data + " --json --quiet");
  ASSERT_EQ(eval.exit_code, 0) << eval.err;
  const auto report = nlohmann::json::parse(eval.out);
  EXPECT_EQ(report["images"], 200);
  EXPECT_EQ(report["classes"], nlohmann::json(lc25000_classes()));
  EXPECT_GT(report["accuracy"].get<double>(), 0.6);
  EXPECT_EQ(report["confusion_matrix"].size(), 5u);
  for (const char* key : {"precision", "recall", "f1", "support"}) EXPECT_TRUE(report["per_class"]["lung_n"].contains(key));
  EXPECT_TRUE(report.contains("macro_f1"));

  // A folder with only some of the classes (the lung ones) evaluates against the same 5 classes.
  const auto lung = run_histotrain("eval --checkpoint " + (run / "model.safetensors").string() + " --data " + data +
                                   "/lung_colon_image_set/lung_image_sets --json --quiet");
  ASSERT_EQ(lung.exit_code, 0) << lung.err;
  const auto lung_report = nlohmann::json::parse(lung.out);
  EXPECT_EQ(lung_report["images"], 120);
  EXPECT_EQ(lung_report["per_class"]["colon_n"]["support"], 0);

  const auto csv = dir / "pred.csv";
  const std::string tile = data + "/lung_colon_image_set/lung_image_sets/lung_n/lungn1.jpeg";
  const auto predicted = run_histotrain("predict --checkpoint " + run.string() + " --csv " + csv.string() + " " + tile +
                                        " " + groups_of(data));
  ASSERT_EQ(predicted.exit_code, 0) << predicted.err;
  std::ifstream in(csv);
  std::string header, row, bad;
  std::getline(in, header);
  std::getline(in, row);
  std::getline(in, bad);
  EXPECT_EQ(header, "path,class,probability,p_colon_aca,p_colon_n,p_lung_aca,p_lung_n,p_lung_scc,error");
  EXPECT_EQ(row.rfind(tile + ",", 0), 0u);
  EXPECT_NE(bad.find("not an image histotrain reads"), std::string::npos) << "the CSV file is not an image: reported, not fatal";

  // The run's weights, and its TorchScript export, load into torchvision's resnet18 in Python.
  ASSERT_EQ(run_histotrain("export --checkpoint " + run.string() + " --torchscript " + (dir / "model.pt").string()).exit_code, 0);
  if (!testing::torchvision_python().empty())
    EXPECT_EQ(testing::run_torchvision_parity((dir / "model.pt").string() + " resnet18 5"), 0);
  else
    EXPECT_FALSE(testing::packages_required()) << "no python3 with torchvision and numpy: run.sh installs them";
}

// A damaged checkpoint file is refused by its checksum, and the one before it is kept intact while
// the run is unfinished (here: stopped by --max-steps after 2 of 3 epochs).
TEST(Cli, DamagedCheckpointIsAClearErrorAndThePreviousOneIsKept) {
  ScratchDir dir;
  const std::string data = synth_data();
  const auto run = dir / "run";
  const auto first = run_histotrain(train_args(data, run, 1));
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const int64_t steps_per_epoch = read_json(run / "checkpoint.json")["step"];
  std::filesystem::remove_all(run);
  ASSERT_EQ(run_histotrain(train_args(data, run, 3) + " --max-steps " + std::to_string(2 * steps_per_epoch)).exit_code, 0);
  EXPECT_EQ(read_json(run / "previous/checkpoint.json")["epoch"], 1) << "the epoch before the last is kept";
  EXPECT_EQ(read_json(run / "checkpoint.json")["epoch"], 2);
  // Cut the weights short, as a full disk or a killed copy would.
  const auto size = std::filesystem::file_size(run / "model.safetensors");
  std::filesystem::resize_file(run / "model.safetensors", size / 2);
  const auto eval = run_histotrain("eval --checkpoint " + run.string() + " --data " + data + " --quiet");
  EXPECT_EQ(eval.exit_code, 1);
  EXPECT_NE(eval.err.find("damaged or truncated"), std::string::npos) << eval.err;
  EXPECT_NE(eval.err.find("previous"), std::string::npos) << "names the intact checkpoint";
  // A flipped byte in the training state stops a resume the same way.
  {
    std::fstream state(run / "train_state.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    state.seekp(100);
    state.put('\x5a');
  }
  const auto resume = run_histotrain("train --resume " + run.string() + " --epochs 3 --quiet");
  EXPECT_EQ(resume.exit_code, 1);
  EXPECT_NE(resume.err.find("train_state.safetensors is damaged"), std::string::npos) << resume.err;
  // The previous checkpoint evaluates and resumes.
  EXPECT_EQ(run_histotrain("eval --checkpoint " + (run / "previous").string() + " --data " + data + " --quiet").exit_code, 0);
  const auto again = run_histotrain("train --resume " + (run / "previous").string() + " --out " + (dir / "again").string() +
                                    " --epochs 2 --quiet");
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(read_json(dir / "again/checkpoint.json")["epoch"], 2);
}

TEST(Cli, ResumeContinuesFromTheLastEpoch) {
  ScratchDir dir;
  const std::string data = synth_data();
  const auto run = dir / "run";
  ASSERT_EQ(run_histotrain(train_args(data, run, 1)).exit_code, 0);
  const auto again = run_histotrain(train_args(data, run, 1));
  EXPECT_EQ(again.exit_code, 1) << "an existing run is never overwritten";
  EXPECT_NE(again.err.find("--resume"), std::string::npos) << again.err;

  const auto resumed = run_histotrain("train --resume " + run.string() + " --epochs 2 --quiet");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("resumed from"), std::string::npos);
  const auto metrics = read_jsonl(run / "metrics.jsonl");
  ASSERT_EQ(metrics.size(), 2u);
  EXPECT_EQ(metrics[0]["epoch"], 1);
  EXPECT_EQ(metrics[1]["epoch"], 2);
  EXPECT_EQ(metrics[1]["step"].get<int>(), 2 * metrics[0]["step"].get<int>());
  EXPECT_EQ(read_json(run / "summary.json")["config"]["image_size"], 64) << "saved flags are kept";
}

// Stopping after epoch 1 and resuming gives the same epoch 2 as a run that never stopped: the
// same weights, optimizer state, schedule, data order and augmentation.
// --conv-grad native: the tuned convolution gradients pick their way per process by timing, and
// two ways differ at float rounding, which 20 steps grow past the bound.
TEST(Cli, ResumedRunMatchesAnUninterruptedOne) {
  ScratchDir dir;
  const std::string data = synth_data();
  ASSERT_EQ(run_histotrain(train_args(data, dir / "straight", 2) + " --conv-grad native").exit_code, 0);
  ASSERT_EQ(run_histotrain(train_args(data, dir / "halves", 2) + " --conv-grad native --max-steps 10").exit_code, 0);
  const auto resumed = run_histotrain("train --resume " + (dir / "halves").string() + " --max-steps 0 --quiet");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  const auto straight = read_jsonl(dir / "straight/metrics.jsonl");
  const auto halves = read_jsonl(dir / "halves/metrics.jsonl");
  ASSERT_EQ(straight.size(), 2u);
  ASSERT_EQ(halves.size(), 2u);
  for (const char* key : {"train_loss", "val_loss", "val_acc", "lr"})
    EXPECT_NEAR(halves[1][key].get<double>(), straight[1][key].get<double>(), 1e-4) << key;
}

TEST(Cli, TargetAccuracyStopsEarlyAndRecordsTheTime) {
  ScratchDir dir;
  const std::string data = synth_data();
  const auto run = dir / "run";
  const auto result = run_histotrain(train_args(data, run, 10) + " --target-acc 0.5");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto summary = read_json(run / "summary.json");
  EXPECT_LT(summary["epochs"].get<int>(), 10);
  ASSERT_FALSE(summary["time_to_target_s"].is_null());
  EXPECT_GE(summary["best_val_acc"].get<double>(), 0.5);
}

TEST(Cli, BadFlagsAreUsageErrorsWithExitCode2) {
  const std::string data = synth_data();
  for (const std::string& args : std::vector<std::string>
       {"", "train", "frobnicate", "train --data " + data + " --epochs 0", "train --data " + data + " --epochs many",
        "train --data " + data + " --arch resnet9", "train --data " + data + " --lr -1",
        "train --data " + data + " --val-fraction 1.5", "train --data " + data + " --schedule step",
        "train --data " + data + " --no-such-flag", "synth", "synth --out /tmp/x --per-class 0", "eval --data " + data,
        "predict --checkpoint /tmp", "train --data " + data + " --backend nccl",
        "train --data " + data + " --backend mpi", "train --data " + data + " --bucket-mb 0", "launch -n 2",
        "launch -n 0 -- train --data " + data, "train --data " + data + " --micro-batches 3",
        "train --data " + data + " --micro-batches 2", "train --data " + data + " --virtual-stages 2",
        "train --data " + data + " --pipeline-stages 2 --pipeline-schedule pipedream",
        "train --data " + data + " --pipeline-schedule 1f1b"}) {
    const auto result = run_histotrain(args);
    EXPECT_EQ(result.exit_code, 2) << "histotrain " << args << "\n" << result.err;
    EXPECT_FALSE(result.err.empty()) << args;
  }
  EXPECT_EQ(run_histotrain("--help").exit_code, 0);
  EXPECT_EQ(run_histotrain("train --help").exit_code, 0);
}

TEST(Cli, MissingDataEmptyFolderAndUnwritableOutputAreClearErrors) {
  ScratchDir dir;
  const auto missing = run_histotrain("train --data " + (dir / "nope").string());
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("does not exist"), std::string::npos) << missing.err;

  std::filesystem::create_directories(dir / "empty/lung_n");
  const auto empty = run_histotrain("train --data " + (dir / "empty").string() + " --out " + (dir / "r").string());
  EXPECT_EQ(empty.exit_code, 1);
  EXPECT_NE(empty.err.find("no images found"), std::string::npos) << empty.err;

  const auto unwritable = run_histotrain("train --data " + synth_data() + " --out /proc/histotrain-run");
  EXPECT_EQ(unwritable.exit_code, 1);
  EXPECT_NE(unwritable.err.find("/proc/histotrain-run"), std::string::npos) << unwritable.err;

  const auto synth = run_histotrain("synth --out /proc/histotrain-synth --per-class 1");
  EXPECT_EQ(synth.exit_code, 1);

  const auto no_checkpoint = run_histotrain("eval --checkpoint " + dir.path().string() + " --data " + synth_data());
  EXPECT_EQ(no_checkpoint.exit_code, 1);
  EXPECT_NE(no_checkpoint.err.find("no checkpoint"), std::string::npos) << no_checkpoint.err;

  const auto cuda = run_histotrain("train --data " + synth_data() + " --device cuda --out " + (dir / "c").string());
  if (cuda.exit_code != 0) EXPECT_NE(cuda.err.find("CUDA"), std::string::npos) << cuda.err;
}

// Corrupt, truncated, grey-scale, CMYK and non-image files in the data: training goes on, the
// bad files are skipped and counted, the odd colour spaces are used.
TEST(Cli, OddAndBrokenFilesAreSkippedOrConvertedNeverFatal) {
  ScratchDir dir;
  const auto data = dir / "data";
  std::filesystem::copy(synth_data(), data, std::filesystem::copy_options::recursive);
  const auto lung_n = data / "lung_colon_image_set/lung_image_sets/lung_n";
  const RgbImage tile = render_synthetic_tile("lung_n", 64, 5);
  auto truncated = encode_jpeg(tile);
  truncated.resize(truncated.size() / 3);
  testing::write_bytes(lung_n / "truncated.jpeg", truncated);
  testing::write_bytes(lung_n / "corrupt.jpeg", std::vector<uint8_t>(500, 7));
  testing::write_bytes(lung_n / "grey.jpeg", encode_jpeg(tile, 90, JpegSubsampling::gray));
  testing::write_bytes(lung_n / "notes.txt", {'h', 'i'});
  std::vector<uint8_t> cmyk(64 * 64 * 4, 200);
  tjhandle h = tjInitCompress();
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  ASSERT_EQ(tjCompress2(h, cmyk.data(), 64, 0, 64, TJPF_CMYK, &buffer, &size, TJSAMP_444, 90, 0), 0);
  testing::write_bytes(lung_n / "cmyk.jpeg", std::vector<uint8_t>(buffer, buffer + size));
  tjFree(buffer);
  tjDestroy(h);

  const auto run = dir / "run";
  const auto result = run_histotrain(train_args(data.string(), run, 1));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("skipped 2 image(s)"), std::string::npos) << result.err;
  // notes.txt and the root groups.csv
  EXPECT_NE(result.err.find("ignored 2 file(s)"), std::string::npos) << result.err;
  const auto summary = read_json(run / "summary.json");
  EXPECT_EQ(summary["skipped_images"], 2);
  EXPECT_EQ(summary["train_images"].get<int>() + summary["val_images"].get<int>(), 202);

  const auto bad_class = dir / "other/kidney";
  std::filesystem::create_directories(bad_class);
  std::filesystem::copy_file(lung_n / "grey.jpeg", bad_class / "k.jpeg");
  const auto unknown = run_histotrain("eval --checkpoint " + run.string() + " --data " + (dir / "other").string());
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("kidney"), std::string::npos) << unknown.err;
}

TEST(Cli, InfoAndVersionSayWhatABugReportNeeds) {
  const auto info = testing::run_histotrain("info --json");
  ASSERT_EQ(info.exit_code, 0) << info.err;
  const auto j = nlohmann::json::parse(info.out);
  for (const char* key : {"histotrain", "libtorch", "backends", "allocator", "cpu", "gpus"}) EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["libtorch"]["version"], compat::torch_version());
  EXPECT_EQ(j["cpu"]["model"], cpu_info().model);
  EXPECT_EQ(j["cpu"]["isa"], nlohmann::json(cpu_info().isa));
  if (!compat::built_with_cuda()) EXPECT_EQ(j["backends"], nlohmann::json::array({"gloo"}));

  const auto text = testing::run_histotrain("info");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  for (const char* line : {"LibTorch ", "backends ", "allocator ", "CPU ", "cores ", "ISA ", "GPU"})
    EXPECT_NE(text.out.find(line), std::string::npos) << line << " in\n" << text.out;

  const auto version = testing::run_histotrain("--version");
  ASSERT_EQ(version.exit_code, 0) << version.err;
  EXPECT_EQ(version.out, system_summary_line(j) + "\n");
  EXPECT_NE(version.out.find(cpu_info().model), std::string::npos) << version.out;
}

}  // namespace
}  // namespace histotrain
