// Faults a run on a shared machine meets: kill -9 and signals at any moment, a commit of a
// checkpoint cut between its renames, a full disk, an output folder that turns read-only.
// docs/reliability.md lists each with its result.
#include <gtest/gtest.h>

#include <random>
#include <regex>
#include <sstream>

#include "core/checkpoint.h"
#include "test_util.h"

namespace histotrain {
namespace {

using testing::read_json;
using testing::read_jsonl;
using testing::run_histotrain;
using testing::run_script;
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

// Starts `command` in the background, waits until it trains, lets it run `delay` seconds, sends
// `signal`, and prints "SIGNAL after DELAY s: exit CODE". Its stderr goes to ERR.
std::string interrupt(const std::string& command, const std::string& signal, double delay, const std::string& err) {
  std::ostringstream s;
  s << command << " >/dev/null 2>" << err << " & pid=$!\n"
    << "for i in $(seq 1 1200); do grep -q 'training resnet18' " << err << " && break; sleep 0.05; done\n"
    << "sleep " << delay << "; kill -" << signal << " $pid; wait $pid; echo \"" << signal << " after " << delay
    << " s: exit $?\"\n";
  return s.str();
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
  const std::string cut = (dir / "cut").string(), resume = "$HISTOTRAIN train --resume " + cut + " --quiet";
  std::string script = interrupt("$HISTOTRAIN " + deterministic_args(data) + " --out " + cut, "KILL", 0, "0.err");
  const char* signals[] = {"TERM", "KILL", "INT", "KILL"};
  for (int i = 0; i < 4; ++i)
    script += interrupt(resume, signals[i], std::round(moment(rng) * 100) / 100, std::to_string(i + 1) + ".err");
  script += resume + " >/dev/null 2>last.err; echo \"last: exit $?\"\ncat 0.err 1.err 2.err 3.err 4.err last.err >&2";
  const auto result = run_script(script);
  SCOPED_TRACE(result.out + result.err);
  EXPECT_NE(result.out.find("KILL after 0 s: exit 137"), std::string::npos);
  EXPECT_TRUE(std::regex_search(result.out, std::regex("TERM after [0-9.]+ s: exit 143")));
  EXPECT_TRUE(std::regex_search(result.out, std::regex("INT after [0-9.]+ s: exit 130")));
  EXPECT_NE(result.out.find("last: exit 0"), std::string::npos);
  EXPECT_NE(result.err.find("has no checkpoint yet"), std::string::npos) << "the first kill came before any checkpoint";
  EXPECT_NE(result.err.find("stopped by SIGTERM at step"), std::string::npos);
  EXPECT_NE(result.err.find("stopped by SIGINT at step"), std::string::npos);
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

// Runs `inner` (bash) in a mount namespace of its own, where it may mount small or read-only
// file systems; "" when this machine does not allow that (the test is skipped then).
std::string in_mount_namespace(const std::string& inner) {
  const auto probe = run_script("unshare -m sh -c 'mount -t tmpfs -o size=1m tmpfs /mnt' && echo yes");
  if (probe.out.find("yes") == std::string::npos) return "";
  const auto result = run_script("export HISTOTRAIN\nunshare -m bash <<'INNER'\nset -u\n" + inner + "\nINNER\n");
  return result.out + result.err;
}

// A study with no runs yet: enough for `histotrain report` to write its report files.
constexpr const char* kEmptyStudy = R"({"study": {"plan": {}}, "training": [], "decode": [], "accuracy": []})";

// A disk that fills while a checkpoint is written, a cache folder too small for the tiles, a
// full disk under a study's report: each is a clear error, and what was written before is intact.
TEST(Reliability, FullDiskWhileWritingACheckpointACacheOrAReportIsAClearErrorAndLosesNothing) {
  ScratchDir dir;
  const std::string data = synth_data(), small = (dir / "small").string(), tiny = (dir / "tiny").string();
  // 200 MiB: one checkpoint of ResNet-18 (135 MB: model.safetensors and train_state.safetensors)
  // fits, two do not.
  const std::string output = in_mount_namespace(
      "mkdir -p " + small + " " + tiny + "\nmount -t tmpfs -o size=200m tmpfs " + small +
      "\nmount -t tmpfs -o size=1m tmpfs " + tiny + "\n"
      "$HISTOTRAIN train --data " + data + " --image-size 32 --batch-size 16 --epochs 3 --threads 2 --quiet --out " +
      small + "/run; echo \"train exit $?\"\n"
      "$HISTOTRAIN eval --checkpoint " + small + "/run --data " + data + " --quiet >/dev/null; echo \"eval exit $?\"\n"
      "echo \"epoch in checkpoint: $(grep -o '\"epoch\": [0-9]*' " + small + "/run/checkpoint.json)\"\n"
      "echo \"left behind: $(ls " + small + "/run | grep -c -E 'next|tmp')\"\n"
      "$HISTOTRAIN train --data " + data + " --image-size 64 --epochs 1 --quiet --cache-dir " + tiny +
      " --out " + small + "/cache-run; echo \"cache exit $?\"\n"
      "echo \"tile cache files: $(ls -A " + tiny + " | grep -c tiles)\"\n"
      // A study's report on the disk, now filled to the last byte.
      "mkdir " + small + "/study && echo '" + kEmptyStudy + "' >" + small + "/study/results.json\n"
      "cat /dev/zero >" + small + "/filler 2>/dev/null\n"
      "$HISTOTRAIN report " + small + "/study; echo \"report exit $?\"\n"
      "echo \"results kept: $(grep -c training " + small + "/study/results.json)\"");
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
  const std::string output = in_mount_namespace(
      "mkdir -p " + out + "\nmount -t tmpfs -o size=400m tmpfs " + out + "\n"
      "$HISTOTRAIN train --data " + data + " --image-size 32 --batch-size 16 --epochs 4 --threads 2 --quiet --out " +
      out + "/run 2>train.err & pid=$!\n"
      "for i in $(seq 1 1200); do [ -e " + out + "/run/checkpoint.json ] && break; sleep 0.05; done\n"
      "mount -o remount,ro " + out + "\nwait $pid; echo \"train exit $?\"; cat train.err\n"
      "$HISTOTRAIN eval --checkpoint " + out + "/run --data " + data + " --quiet >/dev/null; echo \"eval exit $?\"");
  if (output.empty()) GTEST_SKIP() << "this machine does not allow mount namespaces";
  EXPECT_NE(output.find("train exit 1"), std::string::npos) << output;
  EXPECT_NE(output.find("Read-only file system"), std::string::npos) << output;
  EXPECT_NE(output.find("eval exit 0"), std::string::npos) << output;
}

}  // namespace
}  // namespace histotrain
