// Data-parallel training end to end: `histotrain launch`, ranks started by hand as srun or
// torchrun would, a rank killed mid-run, and the rendezvous errors.
#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <thread>

#include "distributed/launcher.h"
#include "test_util.h"

namespace histotrain {
namespace {

using testing::read_json;
using testing::read_jsonl;
using testing::run_histotrain;
using testing::run_script;
using testing::ScratchDir;

using testing::synth_data;

// Bounds on how long a failure takes come from the timeouts the test sets, plus this much for
// starting processes and writing a checkpoint on a slow or busy machine.
constexpr int kSlackSeconds = 8;
constexpr int kLaunchGraceSeconds = 10;  // launch's default --grace

std::string train_args(const std::string& data, const std::filesystem::path& out, int epochs) {
  return "train --data " + data + " --groups " + data + "/groups.csv --image-size 48 --batch-size 16 --epochs " +
         std::to_string(epochs) + " --quiet --out " + out.string();
}

TEST(DataParallel, LaunchTrainsTwoRanksAndCountsEveryValidationImageOnce) {
  ScratchDir dir;
  const std::string data = synth_data();
  const auto run = dir / "run";
  const auto launched = run_histotrain("launch -n 2 --threads-per-rank 1 -- " + train_args(data, run, 2));
  ASSERT_EQ(launched.exit_code, 0) << launched.err;
  EXPECT_NE(launched.err.find("[rank 0] training resnet18"), std::string::npos) << launched.err;
  EXPECT_NE(launched.err.find("batch 16 per rank x 2 ranks = global batch 32"), std::string::npos) << launched.err;
  EXPECT_EQ(launched.err.find("[rank 1] epoch"), std::string::npos) << "only rank 0 reports";
  EXPECT_TRUE(launched.out.empty()) << "--quiet: no rank prints the summary: " << launched.out.substr(0, 200);

  const auto summary = read_json(run / "summary.json");
  EXPECT_EQ(summary["world_size"], 2);
  EXPECT_EQ(summary["global_batch"], 32);
  EXPECT_DOUBLE_EQ(summary["peak_lr"].get<double>(), 0.1) << "0.05 per rank's batch, linear scaling";
  EXPECT_EQ(summary["val"]["images"], summary["val_images"]) << "each validation image counted once over the ranks";
  int64_t cells = 0;
  for (const auto& row : summary["val"]["confusion_matrix"])
    for (const auto& c : row) cells += c.get<int64_t>();
  EXPECT_EQ(cells, summary["val_images"].get<int64_t>());
  // The probability metrics come from every rank's logits: their log-loss is the cross-entropy
  // the ranks summed (a shard missing from the gathered rows would not be).
  EXPECT_NEAR(summary["val"]["log_loss"].get<double>(), summary["val"]["loss"].get<double>(), 1e-5);
  EXPECT_EQ(read_jsonl(run / "metrics.jsonl").size(), 2u) << "one writer: rank 0";
  EXPECT_EQ(summary["steps"], 2 * (160 / 32));

  // The same run continues as one process (another world size): it picks up at epoch 3.
  const auto resumed = run_histotrain("train --resume " + run.string() + " --epochs 3 --quiet");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("saved with 2 rank(s) and continues with 1"), std::string::npos) << resumed.err;
  const auto after = read_json(run / "summary.json");
  EXPECT_EQ(after["world_size"], 1);
  EXPECT_EQ(after["epochs"], 3);
  EXPECT_EQ(after["steps"], 3 * (160 / 16)) << "steps count in the current world's units: 3 epochs of 10 steps";
  EXPECT_EQ(read_jsonl(run / "metrics.jsonl").size(), 3u);
}

// An explicit --backend is used even by one launched rank (how NCCL is checked on a one-GPU node);
// without one, a single rank needs no communication.
TEST(DataParallel, OneLaunchedRankUsesAnExplicitBackend) {
  ScratchDir dir;
  const std::string data = synth_data();
  const auto explicit_backend =
      run_histotrain("launch -n 1 -- " + train_args(data, dir / "gloo", 1) + " --backend gloo --max-steps 2");
  ASSERT_EQ(explicit_backend.exit_code, 0) << explicit_backend.err;
  EXPECT_EQ(read_json(dir / "gloo/summary.json")["backend"], "gloo");
  const auto plain = run_histotrain("launch -n 1 -- " + train_args(data, dir / "plain", 1) + " --max-steps 2");
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(read_json(dir / "plain/summary.json")["backend"], "none");
}

// Two ranks started by hand with torchrun's variables; rank 1 is killed once training runs.
// Rank 0 must fail within the bound and say which rank went away.
TEST(DataParallel, AKilledRankMakesTheOtherFailAndNamesIt) {
  ScratchDir dir;
  const std::string data = synth_data();
  const int dist_timeout = 20;
  const std::string args =
      train_args(data, dir / "run", 200) + " --threads 1 --dist-timeout " + std::to_string(dist_timeout);
  const std::string port = std::to_string(free_loopback_port());
  const auto result = run_script(
      "cd " + dir.path().string() + "\n" +
      "export WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port + "\n" +
      "(RANK=0 exec $HISTOTRAIN " + args + " 2>rank0.err) & pid0=$!\n"
      "(RANK=1 exec $HISTOTRAIN " + args + " 2>rank1.err) & pid1=$!\n"
      "for i in $(seq 1 600); do grep -q '^training' rank0.err && break; sleep 0.1; done\n"
      "sleep 1; kill -9 $pid1; start=$(date +%s)\n"
      "wait $pid0; code=$?; echo \"rank0 exit $code after $(( $(date +%s) - start )) s\"\n"
      "cat rank0.err >&2");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(result.out, m, std::regex("rank0 exit (\\d+) after (\\d+) s"))) << result.out << result.err;
  EXPECT_NE(m[1], "0") << result.err;
  // The collective in flight times out, then up to 3 s go to finding which rank is missing.
  EXPECT_LE(std::stoi(m[2]), dist_timeout + kSlackSeconds) << "bounded by --dist-timeout";
  EXPECT_NE(result.err.find("rank 1 stopped answering"), std::string::npos) << result.err;
}

TEST(DataParallel, LaunchStopsTheOtherRanksWhenOneDies) {
  ScratchDir dir;
  const std::string data = synth_data();
  const int grace = 5, dist_timeout = 20;
  const auto result = run_script(
      "cd " + dir.path().string() + "\n" +
      "$HISTOTRAIN launch -n 2 --threads-per-rank 1 --grace " + std::to_string(grace) + " -- " +
      train_args(data, dir / "run", 200) + " --dist-timeout " + std::to_string(dist_timeout) +
      " >launch.out 2>launch.err & launcher=$!\n"
      "for i in $(seq 1 600); do grep -q 'training resnet18' launch.err && break; sleep 0.1; done\n"
      "ranks=$(pgrep -P $launcher | sort -n); victim=$(echo \"$ranks\" | tail -1)\n"
      "sleep 1; kill -9 $victim; start=$(date +%s)\n"
      "wait $launcher; echo \"launch exit $? after $(( $(date +%s) - start )) s\"\n"
      "alive=0; for p in $ranks; do kill -0 $p 2>/dev/null && alive=$((alive + 1)); done; echo \"ranks alive: $alive\"\n"
      "cat launch.err >&2");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(result.out, m, std::regex("launch exit (\\d+) after (\\d+) s"))) << result.out << result.err;
  EXPECT_NE(m[1], "0");
  // The survivor gets SIGTERM at once and SIGKILL after the grace period.
  EXPECT_LE(std::stoi(m[2]), grace + kSlackSeconds);
  EXPECT_NE(result.out.find("ranks alive: 0"), std::string::npos) << result.out;
  EXPECT_NE(result.err.find("was killed by signal 9"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("stopping the other ranks"), std::string::npos) << result.err;
}

// A two-stage pipeline over two ranks trains, reports its stages, and leaves a whole model:
// the checkpoint evaluates in an ordinary single-process run and resumes there.
TEST(Pipeline, TwoStagesOnTwoRanksTrainAndTheCheckpointIsAWholeModel) {
  ScratchDir dir;
  const std::string data = synth_data();
  const auto run = dir / "run";
  const auto launched = run_histotrain("launch -n 2 --threads-per-rank 1 -- " + train_args(data, run, 2) +
                                       " --pipeline-stages 2 --micro-batches 4 --stage-cut 5");
  ASSERT_EQ(launched.exit_code, 0) << launched.err;
  EXPECT_NE(launched.err.find("stage 0: units stem .. layer2.1"), std::string::npos) << launched.err;
  EXPECT_NE(launched.err.find("stage 1: units layer3.0 .. head"), std::string::npos) << launched.err;
  const auto summary = read_json(run / "summary.json");
  EXPECT_EQ(summary["pipeline"]["stages"], 2);
  EXPECT_EQ(summary["pipeline"]["micro_batches"], 4);
  EXPECT_DOUBLE_EQ(summary["pipeline"]["bubble_theoretical"].get<double>(), 0.2);
  EXPECT_EQ(summary["pipeline"]["per_stage"].size(), 2u);
  for (const auto& stage : summary["pipeline"]["per_stage"]) {
    EXPECT_GT(stage["step_held_peak_mib"].get<double>(), 0) << "activations held for backward";
    EXPECT_GT(stage["computing_s"].get<double>(), 0);
    EXPECT_TRUE(stage["estimated_computing_s"].is_null());
  }
  EXPECT_TRUE(summary["pipeline"]["estimated_step_s"].is_null()) << "a cut given by hand has no measured costs";
  EXPECT_EQ(summary["global_batch"], 16) << "stages share each batch: no data parallelism";
  EXPECT_EQ(summary["steps"], 2 * (160 / 16));
  EXPECT_GT(summary["best_val_acc"].get<double>(), 0.3) << "chance is 0.2";
  EXPECT_NEAR(summary["val"]["log_loss"].get<double>(), summary["val"]["loss"].get<double>(), 1e-5);

  const auto eval = run_histotrain("eval --checkpoint " + run.string() + " --data " + data + " --json --quiet");
  ASSERT_EQ(eval.exit_code, 0) << eval.err;
  EXPECT_GT(nlohmann::json::parse(eval.out)["accuracy"].get<double>(), 0.3);
  const auto resumed = run_histotrain("train --resume " + run.string() + " --epochs 3 --pipeline-stages 1 --micro-batches 1 --quiet");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(read_json(run / "summary.json")["epochs"], 3);

  const auto on_devices = run_histotrain(train_args(data, dir / "devices", 1) +
                                         " --pipeline-stages 2 --micro-batches 2 --devices cpu,cpu --threads 1"
                                         " --pipeline-schedule 1f1b");
  ASSERT_EQ(on_devices.exit_code, 0) << on_devices.err;
  EXPECT_NE(on_devices.err.find("2 stages on devices cpu,cpu"), std::string::npos) << on_devices.err;
  EXPECT_NE(on_devices.err.find("per batch (1F1B)"), std::string::npos) << on_devices.err;
  EXPECT_NE(on_devices.err.find("estimated step"), std::string::npos) << "measured costs, balanced: " << on_devices.err;
  EXPECT_EQ(read_json(dir / "devices" / "summary.json")["pipeline"]["devices"], "cpu,cpu");
  EXPECT_EQ(read_json(dir / "devices" / "summary.json")["pipeline"]["schedule"], "1f1b");

  const auto alone = run_histotrain(train_args(data, dir / "alone", 1) + " --pipeline-stages 2");
  EXPECT_EQ(alone.exit_code, 2);
  EXPECT_NE(alone.err.find("needs 2 ranks, one per stage"), std::string::npos) << alone.err;
}

// SIGTERM to `launch` (as Slurm or a user's Ctrl-C sends it) reaches every rank; they agree on a
// step, rank 0 writes a checkpoint there, and `launch -- train --resume` goes on from it.
// Returns what the first run logged.
std::string sigterm_to_launch_then_resume(const std::string& extra_args) {
  ScratchDir dir;
  const std::string data = synth_data();
  const auto result = run_script(
      "cd " + dir.path().string() + "\n" +
      "$HISTOTRAIN launch -n 2 --threads-per-rank 1 -- " + train_args(data, dir / "run", 200) + extra_args +
      " >launch.out 2>launch.err & launcher=$!\n"
      "for i in $(seq 1 600); do grep -q 'training resnet18' launch.err && break; sleep 0.1; done\n"
      "ranks=$(pgrep -P $launcher | tr '\\n' ' ')\n"
      "kill -TERM $launcher; start=$(date +%s)\n"
      "wait $launcher; echo \"launch exit $? after $(( $(date +%s) - start )) s\"\n"
      "alive=0; for p in $ranks; do kill -0 $p 2>/dev/null && alive=$((alive + 1)); done; echo \"ranks alive: $alive\"\n"
      "cat launch.err >&2");
  std::smatch m;
  EXPECT_TRUE(std::regex_search(result.out, m, std::regex("launch exit (\\d+) after (\\d+) s"))) << result.out << result.err;
  if (m.empty()) return result.err;
  EXPECT_NE(m[1], "0");
  EXPECT_LE(std::stoi(m[2]), kLaunchGraceSeconds + kSlackSeconds) << "the ranks stop, or are killed after the grace period";
  EXPECT_NE(result.out.find("ranks alive: 0"), std::string::npos) << result.out;
  EXPECT_NE(result.err.find("passing signal 15 to every rank"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("stopped by SIGTERM at step"), std::string::npos) << result.err;
  const auto step = testing::read_json(dir / "run/checkpoint.json")["step"].get<int64_t>();
  const auto resumed = run_histotrain("launch -n 2 --threads-per-rank 1 -- train --resume " + (dir / "run").string() +
                                      " --max-steps " + std::to_string(step + 2));
  EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(testing::read_json(dir / "run/checkpoint.json")["step"], step + 2);
  return result.err;
}

TEST(DataParallel, LaunchPassesSigtermToEveryRank) { sigterm_to_launch_then_resume(""); }

// With the 1F1B schedule (the resumed run keeps it: it is one of the run's flags) and the cut on
// measured costs, transfers between the ranks included.
TEST(Pipeline, SigtermStopsBothStagesAtOneStepWithAWholeCheckpoint) {
  const std::string log = sigterm_to_launch_then_resume(" --pipeline-stages 2 --micro-batches 2 --pipeline-schedule 1f1b");
  EXPECT_NE(log.find("a step (measured transfers)"), std::string::npos) << log;
}

// Ranks started with different flags stop at the start, each saying what differs.
TEST(DataParallel, RanksWithDifferentSettingsRefuseToStart) {
  ScratchDir dir;
  const std::string data = synth_data();
  const std::string port = std::to_string(free_loopback_port());
  const std::string args = "train --data " + data + " --epochs 1 --quiet --threads 1 --dist-timeout 20 --out " +
                           (dir / "run").string();
  const auto result = run_script("export WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port + "\n" +
                                 "RANK=0 $HISTOTRAIN " + args + " --image-size 48 2>rank0.err & pid0=$!\n" +
                                 "RANK=1 $HISTOTRAIN " + args + " --image-size 64 2>rank1.err; code1=$?\n" +
                                 "wait $pid0; code0=$?; echo \"exit $code0 $code1\"; cat rank0.err rank1.err >&2");
  EXPECT_NE(result.out.find("exit 1 1"), std::string::npos) << result.out << result.err;
  EXPECT_NE(result.err.find("rank 0: the configuration differs from rank 1's (image_size 48 here, 64 there)"),
            std::string::npos)
      << result.err;
  EXPECT_NE(result.err.find("rank 1: the configuration differs from rank 0's (image_size 64 here, 48 there)"),
            std::string::npos)
      << result.err;
}

TEST(DataParallel, BusyPortUnreachableMasterAndAMissingRankAreClearErrors) {
  ScratchDir dir;
  const std::string data = synth_data();
  const std::string args = train_args(data, dir / "run", 1) + " --dist-timeout 3";
  // Something already listens on the port rank 0 wants.
  const auto busy = run_script(
      "python3 -c 'import socket,time; s=socket.socket(); s.bind((\"127.0.0.1\", 0)); s.listen(); "
      "print(s.getsockname()[1], flush=True); time.sleep(60)' > port.txt & holder=$!\n"
      "for i in $(seq 1 50); do [ -s port.txt ] && break; sleep 0.1; done\n"
      "RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$(cat port.txt) $HISTOTRAIN " + args + "; code=$?\n"
      "kill $holder; exit $code");
  EXPECT_EQ(busy.exit_code, 1);
  EXPECT_NE(busy.err.find("Is the port taken by another job?"), std::string::npos) << busy.err;
  // Rank 1 of a job whose rank 0 never starts.
  const auto alone = run_script("RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
                                std::to_string(free_loopback_port()) + " $HISTOTRAIN " + args);
  EXPECT_EQ(alone.exit_code, 1);
  EXPECT_NE(alone.err.find("cannot reach the rendezvous master (rank 0)"), std::string::npos) << alone.err;
  // Rank 0 of a job whose rank 1 never starts: bounded by --dist-timeout, and no C++ backtrace.
  const auto waiting = run_script("start=$(date +%s); RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
                                  std::to_string(free_loopback_port()) + " $HISTOTRAIN " + args +
                                  "; code=$?; echo \"after $(( $(date +%s) - start )) s\"; exit $code");
  EXPECT_EQ(waiting.exit_code, 1);
  EXPECT_NE(waiting.err.find("rank 0: not all 2 ranks joined within 3 s"), std::string::npos) << waiting.err;
  EXPECT_EQ(waiting.err.find("frame #"), std::string::npos) << waiting.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(waiting.out, m, std::regex("after (\\d+) s"))) << waiting.out;
  EXPECT_LE(std::stoi(m[1]), 15);
}

// Rank 0 and rank 1 in two network namespaces joined by a virtual Ethernet pair: no loopback
// between them, as between two machines. Needs root (CAP_NET_ADMIN); skipped elsewhere.
// Each compression on two ranks, deterministic: a run stopped after 7 of its 10 steps and resumed
// ends with the weights, bit for bit, of one that never stopped (PowerSGD's factors and both
// ranks' error feedback travel in the checkpoint), and evaluates.
TEST(DataParallel, CompressedGradientsTrainStopResumeExactlyAndEvaluate) {
  const std::string data = synth_data();
  const std::map<std::string, std::string> logged = {
      {"fp16", "gradients: fp16"}, {"bf16", "gradients: bf16"}, {"powersgd:2", "gradients: PowerSGD rank 2"}};
  for (const auto& [compression, line] : logged) {
    ScratchDir dir;
    const std::string flags = " --deterministic --grad-compression " + compression + " --powersgd-start-step 2";
    const auto whole = run_histotrain("launch -n 2 --threads-per-rank 1 -- " + train_args(data, dir / "whole", 2) + flags);
    ASSERT_EQ(whole.exit_code, 0) << whole.err;
    EXPECT_NE(whole.err.find(line), std::string::npos) << whole.err;
    const auto part = run_histotrain("launch -n 2 --threads-per-rank 1 -- " + train_args(data, dir / "part", 2) + flags +
                                     " --max-steps 7");
    ASSERT_EQ(part.exit_code, 0) << part.err;
    const auto resumed = run_histotrain("launch -n 2 --threads-per-rank 1 -- train --resume " +
                                        (dir / "part").string() + " --max-steps 0 --quiet");
    ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
    EXPECT_EQ(read_json(dir / "part" / "summary.json")["steps"], 10);
    EXPECT_EQ(testing::read_text(dir / "part" / "model.safetensors"), testing::read_text(dir / "whole" / "model.safetensors"))
        << compression << ": the resumed run's weights differ from the uninterrupted run's";
    const auto evaluated = run_histotrain("eval --checkpoint " + (dir / "part").string() + " --data " + data +
                                          " --json --quiet --bootstrap 0");
    ASSERT_EQ(evaluated.exit_code, 0) << evaluated.err;
    EXPECT_EQ(nlohmann::json::parse(evaluated.out)["images"], 200);
  }
}

// bench/cluster.sh's hosts (namespaces, a bridge, shaped links) are removed when it is killed
// in the middle of a run, as after Ctrl-C or a scheduler's SIGTERM.
TEST(Cluster, ItsNamespacesAndLinksAreGoneAfterAKilledRun) {
  const auto result = run_script(
      "cd " HISTOTRAIN_SOURCE_DIR "\n"
      "bench/cluster.sh --hosts 3 --rate 100mbit -- sleep 60 2>/dev/null & pid=$!\n"
      "tag=hc$((pid % 100000))\n"
      "for i in $(seq 50); do [ \"$(ip netns list | grep -c \"^$tag-\")\" = 3 ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.2; done\n"
      "echo \"during $(ip netns list | grep -c \"^$tag-\") $(ip link show | grep -c \"$tag\")\"\n"
      "kill -TERM $pid; wait $pid; echo \"exit $?\"\n"
      "echo \"after $(ip netns list | grep -c \"^$tag-\") $(ip link show | grep -c \"$tag\")\"\n");
  if (result.out.find("during 0 ") != std::string::npos) GTEST_SKIP() << "cannot create network namespaces here: " << result.out;
  EXPECT_NE(result.out.find("during 3 "), std::string::npos) << result.out << result.err;
  EXPECT_NE(result.out.find("exit 143"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("after 0 0"), std::string::npos) << result.out;
}

// --cpus-per-host: each host's rank runs on its own cores, as on separate machines; more cores
// than the machine has is refused before any namespace is made.
TEST(Cluster, EachHostsRankRunsOnItsOwnCores) {
  ScratchDir dir;
  const auto too_many = run_script("cd " HISTOTRAIN_SOURCE_DIR "\n"
                                   "bench/cluster.sh --hosts 2 --cpus-per-host $(nproc) -- true; echo \"exit $?\"\n");
  EXPECT_NE(too_many.out.find("exit 2"), std::string::npos) << too_many.out << too_many.err;
  EXPECT_NE(too_many.err.find("this machine has"), std::string::npos) << too_many.err;

  if (std::thread::hardware_concurrency() < 2) GTEST_SKIP() << "one core: two hosts cannot have one each";
  const auto pinned = run_script("cd " HISTOTRAIN_SOURCE_DIR "\n"
                                 "bench/cluster.sh --hosts 2 --cpus-per-host 1 --log " + dir.path().string() +
                                 " -- sh -c 'taskset -pc $$' 2>/dev/null; echo \"exit $?\"\n");
  if (pinned.out.find("exit 1\n") != std::string::npos) GTEST_SKIP() << "cannot create network namespaces here";
  EXPECT_NE(pinned.out.find("exit 0"), std::string::npos) << pinned.out << pinned.err;
  EXPECT_NE(testing::read_text(dir / "rank-0.log").find("affinity list: 0\n"), std::string::npos)
      << testing::read_text(dir / "rank-0.log");
  EXPECT_NE(testing::read_text(dir / "rank-1.log").find("affinity list: 1\n"), std::string::npos)
      << testing::read_text(dir / "rank-1.log");
}

// link-bench between two launched ranks; then the scaling model from what a two-rank run
// recorded in its summary, with the prediction for that run beside what it measured.
TEST(ScalingModel, LinkBenchAndTheModelUseWhatATwoRankRunRecorded) {
  ScratchDir dir;
  const auto link = dir / "link.json";
  const auto bench = run_histotrain("launch -n 2 --threads-per-rank 1 -- link-bench --max-mib 16 --repeats 2 "
                                    "--label loop --out " + link.string());
  ASSERT_EQ(bench.exit_code, 0) << bench.err;
  const auto fitted = read_json(link);
  EXPECT_EQ(fitted["ranks"], 2);
  EXPECT_EQ(fitted["samples"].size(), 7u) << "1,024 to 4,194,304 floats (16 MiB), by 4: the large ones dwarf loopback's scatter";
  EXPECT_GT(fitted["beta_s_per_byte"].get<double>(), 0);
  EXPECT_GE(fitted["alpha_s"].get<double>(), 0);

  const std::string data = synth_data();
  const auto run = dir / "dp";
  const auto trained = run_histotrain("launch -n 2 --threads-per-rank 1 -- " + train_args(data, run, 1) +
                                      " --max-steps 3 --val-fraction 0.2 --grad-compression fp16");
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  const auto profile = read_json(run / "summary.json")["reducer_profile"];
  ASSERT_TRUE(profile.is_object()) << profile;
  EXPECT_EQ(profile["grad_compression"], "fp16");
  int64_t values = 0;
  for (const auto& b : profile["buckets"]) {
    values += b["values"].get<int64_t>();
    EXPECT_EQ(b["bytes_per_value"], 2);
    EXPECT_GE(b["ready_share"].get<double>(), 0);
    EXPECT_LE(b["ready_share"].get<double>(), 1);
  }
  EXPECT_EQ(values, 11179077) << "every ResNet-18 (5 classes) gradient travels in a bucket";
  EXPECT_GT(profile["compression_ms"].get<double>(), 0) << "the casts take time";
  // Every rank's own step times, gathered by rank 0: rank 1's are its own, not zeros.
  const auto ranks = read_json(run / "summary.json")["rank_step_times_ms"];
  ASSERT_TRUE(ranks.is_array()) << ranks;
  ASSERT_EQ(ranks.size(), 2u) << ranks;
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(ranks[r]["rank"], r);
    EXPECT_GT(ranks[r]["backward"].get<double>(), 0) << ranks;
    EXPECT_GE(ranks[r]["after_backward"].get<double>(), 0) << ranks;
    EXPECT_GT(ranks[r]["compression"].get<double>(), 0) << "rank " << r << " casts too: " << ranks;
    EXPECT_GE(ranks[r]["compression_during_backward"].get<double>(), 0) << ranks;
    EXPECT_LT(ranks[r]["compression_during_backward"].get<double>(), ranks[r]["compression"].get<double>())
        << "the gathered halves are summed after backward: " << ranks;
  }
  EXPECT_DOUBLE_EQ(ranks[0]["compression"].get<double>(), profile["compression_ms"].get<double>())
      << "rank 0's row is the profile's rank 0";

  const std::string model_args = "scaling-model --link " + link.string() + " --compute " + run.string() +
                                 " --profile " + run.string() + " --measured " + run.string();
  const auto predicted = run_histotrain(model_args + " --ranks 2,4,1024 --json");
  ASSERT_EQ(predicted.exit_code, 0) << predicted.err;
  const auto out = nlohmann::json::parse(predicted.out);
  ASSERT_EQ(out["predictions"].size(), 1u);
  const auto& rows = out["predictions"][0]["rows"];
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(out["predictions"][0]["link"], "loop");
  for (const auto& row : rows) {
    EXPECT_GT(row["efficiency"].get<double>(), 0);
    EXPECT_LE(row["efficiency"].get<double>(), 1);
  }
  EXPECT_LT(rows[2]["efficiency"].get<double>(), rows[0]["efficiency"].get<double>()) << "1,024 ranks cost more";
  ASSERT_EQ(out["measured"].size(), 1u);
  EXPECT_EQ(out["measured"][0]["ranks"], 2);
  EXPECT_GT(out["measured"][0]["predicted"]["step_ms"].get<double>(), 0);
  const auto table = run_histotrain(model_args);
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("Predicted by the scaling model (not measured)"), std::string::npos) << table.out;

  // Someone else's link file: only bounded numbers are taken from it.
  const std::string bad_link = R"J({"alpha_s": "$(touch pwned)", "beta_s_per_byte": 1e-9})J";
  testing::write_bytes(dir / "bad.json", std::vector<uint8_t>(bad_link.begin(), bad_link.end()));
  const auto bad = run_histotrain("scaling-model --link " + (dir / "bad.json").string() + " --compute " +
                                  run.string() + " --profile " + run.string());
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("'alpha_s' is missing or not a number"), std::string::npos) << bad.err;
  const auto one_rank = run_histotrain("link-bench --out " + (dir / "one.json").string());
  EXPECT_EQ(one_rank.exit_code, 2);
  EXPECT_NE(one_rank.err.find("start 2 or more"), std::string::npos) << one_rank.err;
}

TEST(DataParallel, TwoRanksInSeparateNetworkNamespacesTrainOverARealAddress) {
  const std::string tag = std::to_string(::getpid() % 100000);
  const std::string ns0 = "ht0-" + tag, ns1 = "ht1-" + tag;
  const std::string setup = "ip netns add " + ns0 + " && ip netns add " + ns1 + " && ip link add hv0-" + tag +
                            " type veth peer name hv1-" + tag + " && ip link set hv0-" + tag + " netns " + ns0 +
                            " && ip link set hv1-" + tag + " netns " + ns1 + " && ip -n " + ns0 +
                            " addr add 10.231.0.1/24 dev hv0-" + tag + " && ip -n " + ns1 +
                            " addr add 10.231.0.2/24 dev hv1-" + tag + " && ip -n " + ns0 + " link set hv0-" + tag +
                            " up && ip -n " + ns1 + " link set hv1-" + tag + " up && ip -n " + ns0 + " link set lo up && ip -n " + ns1 +
                            " link set lo up";
  const std::string cleanup = "ip netns del " + ns0 + " 2>/dev/null; ip netns del " + ns1 + " 2>/dev/null";
  if (std::system((setup + " >/dev/null 2>&1").c_str()) != 0) {
    std::system(cleanup.c_str());
    GTEST_SKIP() << "cannot create network namespaces here (needs root and iproute2)";
  }
  ScratchDir dir;
  const std::string data = synth_data();
  const std::string args = train_args(data, dir / "run", 1) + " --threads 1 --dist-timeout 30";
  const auto result = run_script("export WORLD_SIZE=2 MASTER_ADDR=10.231.0.1 MASTER_PORT=29500\n"
                                 "RANK=0 ip netns exec " + ns0 + " $HISTOTRAIN " + args + " & pid0=$!\n"
                                 "RANK=1 ip netns exec " + ns1 + " $HISTOTRAIN " + args + "; code1=$?\n"
                                 "wait $pid0; code0=$?; echo \"exit $code0 $code1\"");
  std::system(cleanup.c_str());
  EXPECT_NE(result.out.find("exit 0 0"), std::string::npos) << result.out << result.err;
  EXPECT_NE(result.err.find("master 10.231.0.1:29500"), std::string::npos) << result.err;
  EXPECT_EQ(read_json(dir / "run" / "summary.json")["world_size"], 2);
}

}  // namespace
}  // namespace histotrain
