// Data-parallel training end to end: `histotrain launch`, ranks started by hand as srun or
// torchrun would, a rank killed mid-run, and the rendezvous errors.
#include <gtest/gtest.h>

#include <signal.h>

#include <map>
#include <sstream>
#include <thread>

#include "cli_harness.h"
#include "dist_fixtures.h"
#include "distributed/launcher.h"
#include "test_util.h"

namespace histotrain {
namespace {

using namespace histotrain::testing;  // the harness and the multi-process fixtures

TEST(DataParallel, LaunchTrainsTwoRanksAndCountsEveryValidationImageOnce) {
  ScratchDir dir;
  const std::string data = synth_data();
  const auto run = dir / "run";
  const Finished launched = run_cli(kLaunch2 + train_args(data, run, 2));
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
  const Finished resumed = run_cli({"train", "--resume", run.string(), "--epochs", "3", "--quiet"});
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
  const Args launch1 = {"launch", "-n", "1", "--"};
  const Finished explicit_backend =
      run_cli(launch1 + train_args(data, dir / "gloo", 1) + Args{"--backend", "gloo", "--max-steps", "2"});
  ASSERT_EQ(explicit_backend.exit_code, 0) << explicit_backend.err;
  EXPECT_EQ(read_json(dir / "gloo/summary.json")["backend"], "gloo");
  const Finished plain = run_cli(launch1 + train_args(data, dir / "plain", 1) + Args{"--max-steps", "2"});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(read_json(dir / "plain/summary.json")["backend"], "none");
}

// Two ranks started by hand with torchrun's variables; rank 1 is killed once training runs.
// Rank 0 must fail within the bound and say which rank went away.
TEST(DataParallel, AKilledRankMakesTheOtherFailAndNamesIt) {
  ScratchDir dir;
  const std::string data = synth_data();
  const int dist_timeout = 20;
  const Args args = train_args(data, dir / "run", 200) + Args{"--threads", "1", "--dist-timeout", std::to_string(dist_timeout)};
  const std::string port = std::to_string(free_loopback_port());
  Running rank0(HISTOTRAIN_EXE, rank_of(0, port, args));
  Running rank1(HISTOTRAIN_EXE, rank_of(1, port, args));
  ASSERT_TRUE(rank0.wait_for_err("training", 300)) << rank0.err_so_far();
  rank1.signal(SIGKILL);
  const double killed_at = rank0.seconds();
  const Finished ended = rank0.finish();
  EXPECT_NE(ended.exit_code, 0) << ended.err;
  // The collective in flight times out, then up to 3 s go to finding which rank is missing: bounded
  // by --dist-timeout (LibTorch's own default would wait 30 minutes), within 5x on a busy machine.
  EXPECT_LE(ended.seconds - killed_at, 5 * dist_timeout) << "bounded by --dist-timeout";
  EXPECT_NE(ended.err.find("rank 1 stopped answering"), std::string::npos) << ended.err;
}

TEST(DataParallel, LaunchStopsTheOtherRanksWhenOneDies) {
  ScratchDir dir;
  const std::string data = synth_data();
  const int grace = 5, dist_timeout = 20;
  Invocation call;
  call.args = Args{"launch", "-n", "2", "--threads-per-rank", "1", "--grace", std::to_string(grace), "--"} +
              train_args(data, dir / "run", 200) + Args{"--dist-timeout", std::to_string(dist_timeout)};
  Running launcher(HISTOTRAIN_EXE, call);
  ASSERT_TRUE(launcher.wait_for_err("training resnet18", 300)) << launcher.err_so_far();
  const std::vector<pid_t> ranks = children_of(launcher.pid());
  ASSERT_EQ(ranks.size(), 2u);
  ::kill(ranks.back(), SIGKILL);
  const double killed_at = launcher.seconds();
  const Finished ended = launcher.finish();
  EXPECT_NE(ended.exit_code, 0);
  // The survivor gets SIGTERM at once and SIGKILL after the grace period (5x, for a busy machine).
  EXPECT_LE(ended.seconds - killed_at, 5 * grace);
  EXPECT_EQ(count_alive(ranks), 0);
  EXPECT_NE(ended.err.find("was killed by signal 9"), std::string::npos) << ended.err;
  EXPECT_NE(ended.err.find("stopping the other ranks"), std::string::npos) << ended.err;
}

// A two-stage pipeline over two ranks trains, reports its stages, and leaves a whole model:
// the checkpoint evaluates in an ordinary single-process run and resumes there.
TEST(Pipeline, TwoStagesOnTwoRanksTrainAndTheCheckpointIsAWholeModel) {
  ScratchDir dir;
  const std::string data = synth_data();
  const auto run = dir / "run";
  const Finished launched = run_cli(kLaunch2 + train_args(data, run, 2) +
                                    Args{"--pipeline-stages", "2", "--micro-batches", "4", "--stage-cut", "5"});
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

  const Finished eval = run_cli({"eval", "--checkpoint", run.string(), "--data", data, "--json", "--quiet"});
  ASSERT_EQ(eval.exit_code, 0) << eval.err;
  EXPECT_GT(eval.json()["accuracy"].get<double>(), 0.3);
  const Finished resumed = run_cli({"train", "--resume", run.string(), "--epochs", "3", "--pipeline-stages", "1",
                                    "--micro-batches", "1", "--quiet"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(read_json(run / "summary.json")["epochs"], 3);

  const Finished on_devices =
      run_cli(train_args(data, dir / "devices", 1) + Args{"--pipeline-stages", "2", "--micro-batches", "2", "--devices",
                                                          "cpu,cpu", "--threads", "1", "--pipeline-schedule", "1f1b"});
  ASSERT_EQ(on_devices.exit_code, 0) << on_devices.err;
  EXPECT_NE(on_devices.err.find("2 stages on devices cpu,cpu"), std::string::npos) << on_devices.err;
  EXPECT_NE(on_devices.err.find("per batch (1F1B)"), std::string::npos) << on_devices.err;
  EXPECT_NE(on_devices.err.find("estimated step"), std::string::npos) << "measured costs, balanced: " << on_devices.err;
  EXPECT_EQ(read_json(dir / "devices" / "summary.json")["pipeline"]["devices"], "cpu,cpu");
  EXPECT_EQ(read_json(dir / "devices" / "summary.json")["pipeline"]["schedule"], "1f1b");

  const Finished alone = run_cli(train_args(data, dir / "alone", 1) + Args{"--pipeline-stages", "2"});
  EXPECT_EQ(alone.exit_code, 2);
  EXPECT_NE(alone.err.find("needs 2 ranks, one per stage"), std::string::npos) << alone.err;
}

// SIGTERM to `launch` (as Slurm or a user's Ctrl-C sends it) reaches every rank; they agree on a
// step, rank 0 writes a checkpoint there, and `launch -- train --resume` goes on from it.
// Returns what the first run logged.
std::string sigterm_to_launch_then_resume(const Args& extra_args) {
  ScratchDir dir;
  const std::string data = synth_data();
  Invocation call;
  call.args = kLaunch2 + train_args(data, dir / "run", 200) + extra_args;
  Running launcher(HISTOTRAIN_EXE, call);
  EXPECT_TRUE(launcher.wait_for_err("training resnet18", 300)) << launcher.err_so_far();
  const std::vector<pid_t> ranks = children_of(launcher.pid());
  EXPECT_EQ(ranks.size(), 2u);
  launcher.signal(SIGTERM);
  const double signalled_at = launcher.seconds();
  const Finished ended = launcher.finish();
  EXPECT_NE(ended.exit_code, 0);
  EXPECT_LE(ended.seconds - signalled_at, 5 * kLaunchGraceSeconds)
      << "the ranks stop, or are killed after the grace period (5x, for a busy machine)";
  EXPECT_EQ(count_alive(ranks), 0);
  EXPECT_NE(ended.err.find("passing signal 15 to every rank"), std::string::npos) << ended.err;
  EXPECT_NE(ended.err.find("stopped by SIGTERM at step"), std::string::npos) << ended.err;
  if (!std::filesystem::exists(dir / "run/checkpoint.json")) {
    ADD_FAILURE() << "no checkpoint after SIGTERM:\n" << ended.err;
    return ended.err;
  }
  const auto step = read_json(dir / "run/checkpoint.json")["step"].get<int64_t>();
  const Finished resumed = run_cli(kLaunch2 + Args{"train", "--resume", (dir / "run").string(), "--max-steps",
                                                   std::to_string(step + 2)});
  EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(read_json(dir / "run/checkpoint.json")["step"], step + 2);
  return ended.err;
}

TEST(DataParallel, LaunchPassesSigtermToEveryRank) { sigterm_to_launch_then_resume({}); }

// With the 1F1B schedule (the resumed run keeps it: it is one of the run's flags) and the cut on
// measured costs, transfers between the ranks included.
TEST(Pipeline, SigtermStopsBothStagesAtOneStepWithAWholeCheckpoint) {
  const std::string log =
      sigterm_to_launch_then_resume({"--pipeline-stages", "2", "--micro-batches", "2", "--pipeline-schedule", "1f1b"});
  EXPECT_NE(log.find("a step (measured transfers)"), std::string::npos) << log;
}

// Ranks started with different flags stop at the start, each saying what differs.
TEST(DataParallel, RanksWithDifferentSettingsRefuseToStart) {
  ScratchDir dir;
  const std::string data = synth_data();
  const std::string port = std::to_string(free_loopback_port());
  const Args args = {"train", "--data", data, "--epochs", "1", "--quiet", "--threads", "1", "--dist-timeout", "20",
                     "--out", (dir / "run").string()};
  Running rank0(HISTOTRAIN_EXE, rank_of(0, port, args + Args{"--image-size", "48"}));
  const Finished rank1 = testing::run_cli(rank_of(1, port, args + Args{"--image-size", "64"}));
  const Finished ended0 = rank0.finish();
  EXPECT_EQ(ended0.exit_code, 1) << ended0.err;
  EXPECT_EQ(rank1.exit_code, 1) << rank1.err;
  EXPECT_NE(ended0.err.find("rank 0: the configuration differs from rank 1's (image_size 48 here, 64 there)"),
            std::string::npos)
      << ended0.err;
  EXPECT_NE(rank1.err.find("rank 1: the configuration differs from rank 0's (image_size 64 here, 48 there)"),
            std::string::npos)
      << rank1.err;
}

// An error on one rank only, after the ranks joined (its --data, a per-node path, holds no
// tiles): that rank says what is wrong and exits; the other, waiting for it in the next
// collective, ends within --dist-timeout and names it, instead of hanging.
TEST(DataParallel, AnErrorOnOneRankEndsEveryRankWithAMessage) {
  ScratchDir dir;
  const std::string data = synth_data();
  fs::create_directories(dir / "no_tiles");
  const int dist_timeout = 10;
  const std::string port = std::to_string(free_loopback_port());
  const Args rest = {"--epochs", "1", "--quiet", "--threads", "1", "--dist-timeout", std::to_string(dist_timeout),
                     "--out", (dir / "run").string()};
  Running rank0(HISTOTRAIN_EXE, rank_of(0, port, Args{"train", "--data", data} + rest));
  const Finished rank1 = run_cli(rank_of(1, port, Args{"train", "--data", (dir / "no_tiles").string()} + rest));
  const Finished ended0 = rank0.finish();
  EXPECT_EQ(rank1.exit_code, 1) << rank1.err;
  EXPECT_NE(rank1.err.find("no_tiles"), std::string::npos) << rank1.err;
  EXPECT_NE(ended0.exit_code, 0) << ended0.err;
  EXPECT_NE(ended0.err.find("rank 1 stopped answering"), std::string::npos) << ended0.err;
  EXPECT_EQ(ended0.err.find("frame #"), std::string::npos) << "a message, not a C++ backtrace: " << ended0.err;
  EXPECT_LE(ended0.seconds - rank1.seconds, 5 * dist_timeout) << "bounded by --dist-timeout";
}

TEST(DataParallel, BusyPortUnreachableMasterAndAMissingRankAreClearErrors) {
  ScratchDir dir;
  const std::string data = synth_data();
  const Args args = train_args(data, dir / "run", 1) + Args{"--dist-timeout", "3"};
  // Something already listens on the port rank 0 wants.
  Invocation listen;
  listen.args = {"-c", "import socket,time; s=socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
                       "print(s.getsockname()[1], flush=True); time.sleep(60)"};
  Running holder("/usr/bin/python3", listen);
  ASSERT_TRUE(testing::wait_until([&] { return holder.out_so_far().find('\n') != std::string::npos; }, 30));
  const std::string busy_port = holder.out_so_far().substr(0, holder.out_so_far().find('\n'));
  const Finished busy = run_cli(rank_of(0, busy_port, args));
  EXPECT_EQ(busy.exit_code, 1);
  EXPECT_NE(busy.err.find("Is the port taken by another job?"), std::string::npos) << busy.err;
  // Rank 1 of a job whose rank 0 never starts.
  const Finished alone = run_cli(rank_of(1, std::to_string(free_loopback_port()), args));
  EXPECT_EQ(alone.exit_code, 1);
  EXPECT_NE(alone.err.find("cannot reach the rendezvous master (rank 0)"), std::string::npos) << alone.err;
  // Rank 0 of a job whose rank 1 never starts: bounded by --dist-timeout, and no C++ backtrace.
  const Finished waiting = run_cli(rank_of(0, std::to_string(free_loopback_port()), args));
  EXPECT_EQ(waiting.exit_code, 1);
  EXPECT_NE(waiting.err.find("rank 0: not all 2 ranks joined within 3 s"), std::string::npos) << waiting.err;
  EXPECT_EQ(waiting.err.find("frame #"), std::string::npos) << waiting.err;
  EXPECT_LE(waiting.seconds, 5 * 3) << "5x --dist-timeout";
}

// Each compression on two ranks, deterministic: a run stopped after 7 of its 10 steps and resumed
// ends with the weights, bit for bit, of one that never stopped (PowerSGD's factors and both
// ranks' error feedback travel in the checkpoint), and evaluates.
TEST(DataParallel, CompressedGradientsTrainStopResumeExactlyAndEvaluate) {
  const std::string data = synth_data();
  const std::map<std::string, std::string> logged = {
      {"fp16", "gradients: fp16"}, {"bf16", "gradients: bf16"}, {"powersgd:2", "gradients: PowerSGD rank 2"}};
  for (const auto& [compression, line] : logged) {
    ScratchDir dir;
    const Args flags = {"--deterministic", "--grad-compression", compression, "--powersgd-start-step", "2"};
    const Finished whole = run_cli(kLaunch2 + train_args(data, dir / "whole", 2) + flags);
    ASSERT_EQ(whole.exit_code, 0) << whole.err;
    EXPECT_NE(whole.err.find(line), std::string::npos) << whole.err;
    const Finished part = run_cli(kLaunch2 + train_args(data, dir / "part", 2) + flags + Args{"--max-steps", "7"});
    ASSERT_EQ(part.exit_code, 0) << part.err;
    const Finished resumed =
        run_cli(kLaunch2 + Args{"train", "--resume", (dir / "part").string(), "--max-steps", "0", "--quiet"});
    ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
    EXPECT_EQ(read_json(dir / "part" / "summary.json")["steps"], 10);
    EXPECT_EQ(testing::read_text(dir / "part" / "model.safetensors"), testing::read_text(dir / "whole" / "model.safetensors"))
        << compression << ": the resumed run's weights differ from the uninterrupted run's";
    const Finished evaluated = run_cli({"eval", "--checkpoint", (dir / "part").string(), "--data", data, "--json",
                                        "--quiet", "--bootstrap", "0"});
    ASSERT_EQ(evaluated.exit_code, 0) << evaluated.err;
    EXPECT_EQ(evaluated.json()["images"], 200);
  }
}

}  // namespace
}  // namespace histotrain
