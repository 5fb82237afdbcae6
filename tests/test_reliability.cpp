// Faults a run on a shared machine meets: kill -9 and signals at any moment, a commit of a
// checkpoint cut between its renames, a full disk, an output folder that turns read-only.
// docs/reliability.md lists each with its result.
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <cmath>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include "cli_harness.h"
#include "core/checkpoint.h"
#include "test_util.h"

namespace histotrain {
namespace {

using testing::read_json;
using testing::read_jsonl;
using testing::Finished;
using testing::run_histotrain;
using testing::Running;
using testing::ScratchDir;
namespace fs = std::filesystem;

using testing::synth_data;

// 4 epochs of 10 steps (about 9 s of training here), deterministic, a checkpoint every 3 steps
// inside an epoch.
std::string deterministic_args(const std::string& data) {
  return "train --data " + data + " --groups " + data +
         "/groups.csv --image-size 64 --batch-size 16 --epochs 4 --threads 2 --quiet --deterministic "
         "--checkpoint-steps 3";
}

// Every parameter and buffer of the two runs' models, bit for bit.
void expect_identical_weights(const fs::path& a, const fs::path& b) {
  ResNet first = load_model(a, read_checkpoint_meta(a)), second = load_model(b, read_checkpoint_meta(b));
  const auto p = first->named_parameters(), q = second->named_parameters();
  for (const auto& item : p) EXPECT_TRUE(torch::equal(item.value(), q[item.key()])) << item.key();
  const auto bp = first->named_buffers(), bq = second->named_buffers();
  for (const auto& item : bp) EXPECT_TRUE(torch::equal(item.value(), bq[item.key()])) << item.key();
}

// Starts histotrain with `args`, waits until it trains, lets it train `delay` seconds (a random
// moment of the run: the point of the test, not a wait for something), sends `signal`; how it
// ended.
Finished interrupt(const std::vector<std::string>& args, int signal, double delay) {
  Running run(HISTOTRAIN_EXE, {args});
  EXPECT_TRUE(run.wait_for_err("training resnet18", 120)) << run.err_so_far();
  std::this_thread::sleep_for(std::chrono::duration<double>(delay));
  run.signal(signal);
  return run.finish();
}

// kill -9 and SIGTERM/SIGINT at random moments, each followed by --resume: the run ends with the
// weights of a run that was never interrupted. The first kill comes before any checkpoint
// exists; the others land anywhere, inside a step or a checkpoint write included.
TEST(Reliability, KilledAndSignalledAtRandomMomentsTheResumedRunEndsWithIdenticalWeights) {
  ScratchDir dir;
  const std::string data = synth_data();
  ASSERT_EQ(run_histotrain(deterministic_args(data) + " --out " + (dir / "straight").string()).exit_code, 0);

  std::mt19937 rng(static_cast<std::mt19937::result_type>(testing::test_seed()));
  // The first three interrupts come within 6 s of training in all, so the run is still going
  // when the SIGINT comes.
  std::uniform_real_distribution<double> moment(0.1, 2.0);
  const std::string cut = (dir / "cut").string();
  const std::vector<std::string> resume = {"train", "--resume", cut, "--quiet"};
  std::string logs;
  const Finished first = interrupt(testing::words(deterministic_args(data) + " --out " + cut), SIGKILL, 0);
  EXPECT_EQ(first.exit_code, 128 + SIGKILL);
  logs += first.err;
  const int signals[] = {SIGTERM, SIGKILL, SIGINT, SIGKILL};
  for (const int signal : signals) {
    const double delay = std::round(moment(rng) * 100) / 100;
    const Finished ended = interrupt(resume, signal, delay);
    logs += ended.err;
    // SIGTERM and SIGINT end the run at a step, with a checkpoint, and the exit code of the signal
    // (the last SIGKILL may come after the run has finished).
    if (signal != SIGKILL)
      EXPECT_EQ(ended.exit_code, 128 + signal) << "signal " << signal << " after " << delay << " s:\n" << ended.err;
  }
  const Finished last = testing::run_cli(resume);
  EXPECT_EQ(last.exit_code, 0) << last.err;
  logs += last.err;
  SCOPED_TRACE(logs);
  EXPECT_NE(logs.find("has no checkpoint yet"), std::string::npos) << "the first kill came before any checkpoint";
  EXPECT_NE(logs.find("stopped by SIGTERM at step"), std::string::npos);
  EXPECT_NE(logs.find("stopped by SIGINT at step"), std::string::npos);
  expect_identical_weights(dir / "straight", dir / "cut");
  const auto straight = read_jsonl(dir / "straight/metrics.jsonl").back(), resumed = read_jsonl(dir / "cut/metrics.jsonl").back();
  for (const char* key : {"step", "train_loss", "train_acc", "val_loss", "val_acc"}) EXPECT_EQ(resumed[key], straight[key]) << key;
}

// A checkpoint is staged as NAME.next files and renamed into place once checkpoint.json.next is
// whole. A run killed between the renames leaves a complete stage: the next load finishes it. A
// stage without its checkpoint.json.next never finished writing: it is dropped.
TEST(Reliability, AStagedCheckpointIsFinishedWhenCompleteAndDroppedWhenNot) {
  ScratchDir dir;
  const std::string data = synth_data();
  const std::string args = "train --data " + data + " --image-size 32 --batch-size 16 --threads 2 --quiet";
  ASSERT_EQ(run_histotrain(args + " --epochs 1 --out " + (dir / "one").string()).exit_code, 0);
  ASSERT_EQ(run_histotrain(args + " --epochs 2 --out " + (dir / "two").string()).exit_code, 0);
  // "one" killed half-way through writing epoch 2's checkpoint, after the first rename.
  fs::copy_file(dir / "two/train_state.safetensors", dir / "one/train_state.safetensors",
                fs::copy_options::overwrite_existing);
  fs::copy_file(dir / "two/model.safetensors", dir / "one/model.safetensors.next");
  fs::copy_file(dir / "two/checkpoint.json", dir / "one/checkpoint.json.next");
  const auto eval = run_histotrain("eval --checkpoint " + (dir / "one").string() + " --data " + data + " --quiet");
  EXPECT_EQ(eval.exit_code, 0) << eval.err;
  EXPECT_EQ(read_json(dir / "one/checkpoint.json")["epoch"], 2);
  EXPECT_FALSE(fs::exists(dir / "one/model.safetensors.next"));
  // A stage cut short: the checkpoint in place stays, the stage goes.
  fs::copy_file(dir / "two/model.safetensors", dir / "two/model.safetensors.next");
  fs::resize_file(dir / "two/model.safetensors.next", 1000);
  const auto resumed = run_histotrain("train --resume " + (dir / "two").string() + " --epochs 3 --quiet");
  EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(read_json(dir / "two/checkpoint.json")["epoch"], 3);
  EXPECT_FALSE(fs::exists(dir / "two/model.safetensors.next"));
}

// Runs tests/reliability/SCRIPT with `args` in a mount namespace of its own, where it may mount
// small or read-only file systems; "" when this machine does not allow that (the test is skipped).
std::string in_mount_namespace(const std::string& script, const std::vector<std::string>& args) {
  const Finished probe = testing::run_program("unshare", {{"-m", "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", "/mnt"}});
  if (probe.exit_code != 0) return "";
  std::vector<std::string> call = {"-m", "bash", HISTOTRAIN_SOURCE_DIR "/tests/reliability/" + script, HISTOTRAIN_EXE};
  call.insert(call.end(), args.begin(), args.end());
  const Finished result = testing::run_program("unshare", {call});
  return result.out + result.err;
}

// A disk that fills while a checkpoint is written, a cache folder too small for the tiles, a
// full disk under a study's report: each is a clear error, and what was written before is intact.
TEST(Reliability, FullDiskWhileWritingACheckpointACacheOrAReportIsAClearErrorAndLosesNothing) {
  ScratchDir dir;
  const std::string data = synth_data(), small = (dir / "small").string(), tiny = (dir / "tiny").string();
  // 200 MiB: one checkpoint of ResNet-18 (135 MB: model.safetensors and train_state.safetensors)
  // fits, two do not.
  const std::string output = in_mount_namespace("full_disk.sh", {data, small, tiny});
  if (output.empty()) GTEST_SKIP() << "this machine does not allow mount namespaces";
  EXPECT_NE(output.find("train exit 1"), std::string::npos) << output;
  EXPECT_NE(output.find("cannot write a checkpoint to " + small + "/run"), std::string::npos) << output;
  EXPECT_NE(output.find("MiB free on that file system"), std::string::npos) << output;
  EXPECT_NE(output.find("the checkpoint already there (step "), std::string::npos) << output;
  EXPECT_NE(output.find("eval exit 0"), std::string::npos) << output;
  EXPECT_NE(output.find("epoch in checkpoint: \"epoch\": 1"), std::string::npos) << output;
  EXPECT_NE(output.find("left behind: 0"), std::string::npos) << output;
  EXPECT_NE(output.find("cache exit 1"), std::string::npos) << output;
  EXPECT_NE(output.find("cannot make the tile cache"), std::string::npos) << output;
  EXPECT_NE(output.find("No space left on device"), std::string::npos) << output;
  EXPECT_NE(output.find("tile cache files: 0"), std::string::npos) << output;
  EXPECT_NE(output.find("report exit 1"), std::string::npos) << output;
  EXPECT_TRUE(std::regex_search(output, std::regex("cannot (create|write) .*: No space left on device"))) << output;
  EXPECT_NE(output.find("results kept: 1"), std::string::npos) << output;
}

// The output folder turns read-only in the middle of a run (a remount after a storage fault).
TEST(Reliability, OutputTurningReadOnlyMidRunIsAClearErrorAndLosesNothing) {
  ScratchDir dir;
  const std::string data = synth_data(), out = (dir / "out").string();
  const std::string output = in_mount_namespace("read_only.sh", {data, out});
  if (output.empty()) GTEST_SKIP() << "this machine does not allow mount namespaces";
  EXPECT_NE(output.find("train exit 1"), std::string::npos) << output;
  EXPECT_NE(output.find("Read-only file system"), std::string::npos) << output;
  EXPECT_NE(output.find("eval exit 0"), std::string::npos) << output;
}

}  // namespace
}  // namespace histotrain
