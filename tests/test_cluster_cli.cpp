// Between hosts: bench/cluster.sh's simulated hosts (network namespaces, shaped links) cleaned up
// and pinned to their cores, two ranks over a real address in two namespaces, and the link
// benchmark and scaling model from what a two-rank run recorded.
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <sstream>
#include <thread>

#include "cli_harness.h"
#include "dist_fixtures.h"
#include "test_util.h"

namespace histotrain {
namespace {

using namespace histotrain::testing;  // the harness and the multi-process fixtures

// The network namespaces and links of bench/cluster.sh whose names hold `tag`: "NAMESPACES LINKS".
std::string cluster_leftovers(const std::string& tag) {
  const Finished namespaces = run_program("ip", {{"netns", "list"}});
  const Finished links = run_program("ip", {{"link", "show"}});
  int n = 0, l = 0;
  std::istringstream ns_lines(namespaces.out), link_lines(links.out);
  for (std::string line; std::getline(ns_lines, line);) n += line.rfind(tag + "-", 0) == 0 ? 1 : 0;
  for (std::string line; std::getline(link_lines, line);) l += line.find(tag) != std::string::npos ? 1 : 0;
  return std::to_string(n) + " " + std::to_string(l);
}

// bench/cluster.sh's hosts (namespaces, a bridge, shaped links) are removed when it is killed
// in the middle of a run, as after Ctrl-C or a scheduler's SIGTERM.
TEST(Cluster, ItsNamespacesAndLinksAreGoneAfterAKilledRun) {
  Invocation call;
  call.args = {"bench/cluster.sh", "--hosts", "3", "--rate", "100mbit", "--", "sleep", "60"};
  call.cwd = HISTOTRAIN_SOURCE_DIR;
  Running cluster("bash", call);
  const std::string tag = "hc" + std::to_string(cluster.pid() % 100000);
  testing::wait_until([&] { return cluster_leftovers(tag).rfind("3 ", 0) == 0 || !alive(cluster.pid()); }, 10);
  const std::string during = cluster_leftovers(tag);
  if (during.rfind("0 ", 0) == 0) GTEST_SKIP() << "cannot create network namespaces here: " << cluster.err_so_far();
  EXPECT_EQ(during.substr(0, 2), "3 ") << during << cluster.err_so_far();
  cluster.signal(SIGTERM);
  const Finished ended = cluster.finish();
  EXPECT_EQ(ended.exit_code, 143) << ended.err;
  EXPECT_EQ(cluster_leftovers(tag), "0 0");
}

// --cpus-per-host: each host's rank runs on its own cores, as on separate machines; more cores
// than the machine has is refused before any namespace is made.
TEST(Cluster, EachHostsRankRunsOnItsOwnCores) {
  ScratchDir dir;
  const std::string cores = std::to_string(std::thread::hardware_concurrency());
  Invocation too_many_call;
  too_many_call.args = {"bench/cluster.sh", "--hosts", "2", "--cpus-per-host", cores, "--", "true"};
  too_many_call.cwd = HISTOTRAIN_SOURCE_DIR;
  const Finished too_many = run_program("bash", too_many_call);
  EXPECT_EQ(too_many.exit_code, 2) << too_many.err;
  EXPECT_NE(too_many.err.find("this machine has"), std::string::npos) << too_many.err;

  if (std::thread::hardware_concurrency() < 2) GTEST_SKIP() << "one core: two hosts cannot have one each";
  Invocation pinned_call;
  pinned_call.args = {"bench/cluster.sh", "--hosts", "2", "--cpus-per-host", "1", "--log", dir.path().string(), "--",
                      "grep", "Cpus_allowed_list", "/proc/self/status"};
  pinned_call.cwd = HISTOTRAIN_SOURCE_DIR;
  const Finished pinned = run_program("bash", pinned_call);
  if (pinned.exit_code == 1) GTEST_SKIP() << "cannot create network namespaces here";
  EXPECT_EQ(pinned.exit_code, 0) << pinned.out << pinned.err;
  EXPECT_NE(testing::read_text(dir / "rank-0.log").find("Cpus_allowed_list:\t0\n"), std::string::npos)
      << testing::read_text(dir / "rank-0.log");
  EXPECT_NE(testing::read_text(dir / "rank-1.log").find("Cpus_allowed_list:\t1\n"), std::string::npos)
      << testing::read_text(dir / "rank-1.log");
}

// link-bench between two launched ranks; then the scaling model from what a two-rank run
// recorded in its summary, with the prediction for that run beside what it measured.
TEST(ScalingModel, LinkBenchAndTheModelUseWhatATwoRankRunRecorded) {
  ScratchDir dir;
  const auto link = dir / "link.json";
  const Finished bench =
      run_cli(kLaunch2 + Args{"link-bench", "--max-mib", "16", "--repeats", "2", "--label", "loop", "--out", link.string()});
  ASSERT_EQ(bench.exit_code, 0) << bench.err;
  const auto fitted = read_json(link);
  EXPECT_EQ(fitted["ranks"], 2);
  EXPECT_EQ(fitted["samples"].size(), 7u) << "1,024 to 4,194,304 floats (16 MiB), by 4: the large ones dwarf loopback's scatter";
  EXPECT_GT(fitted["beta_s_per_byte"].get<double>(), 0);
  EXPECT_GE(fitted["alpha_s"].get<double>(), 0);

  const std::string data = synth_data();
  const auto run = dir / "dp";
  const Finished trained = run_cli(kLaunch2 + train_args(data, run, 1) +
                                   Args{"--max-steps", "3", "--val-fraction", "0.2", "--grad-compression", "fp16"});
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

  const Args model_args = {"scaling-model", "--link", link.string(), "--compute", run.string(),
                           "--profile", run.string(), "--measured", run.string()};
  const Finished predicted = run_cli(model_args + Args{"--ranks", "2,4,1024", "--json"});
  ASSERT_EQ(predicted.exit_code, 0) << predicted.err;
  const auto out = predicted.json();
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
  const Finished table = run_cli(model_args);
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("Predicted by the scaling model (not measured)"), std::string::npos) << table.out;

  // Someone else's link file: only bounded numbers are taken from it.
  const std::string bad_link = R"J({"alpha_s": "$(touch pwned)", "beta_s_per_byte": 1e-9})J";
  testing::write_bytes(dir / "bad.json", std::vector<uint8_t>(bad_link.begin(), bad_link.end()));
  const Finished bad = run_cli({"scaling-model", "--link", (dir / "bad.json").string(), "--compute", run.string(),
                                "--profile", run.string()});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("'alpha_s' is missing or not a number"), std::string::npos) << bad.err;
  const Finished one_rank = run_cli({"link-bench", "--out", (dir / "one.json").string()});
  EXPECT_EQ(one_rank.exit_code, 2);
  EXPECT_NE(one_rank.err.find("start 2 or more"), std::string::npos) << one_rank.err;
}

// Runs `ip ARGS...`; whether it succeeded.
bool ip(const Args& args) { return run_program("ip", {args}).exit_code == 0; }

TEST(DataParallel, TwoRanksInSeparateNetworkNamespacesTrainOverARealAddress) {
  const std::string tag = std::to_string(::getpid() % 100000);
  const std::string ns0 = "ht0-" + tag, ns1 = "ht1-" + tag, veth0 = "hv0-" + tag, veth1 = "hv1-" + tag;
  struct Cleanup {
    std::string ns0, ns1;
    ~Cleanup() {
      ip({"netns", "del", ns0});
      ip({"netns", "del", ns1});
    }
  } cleanup{ns0, ns1};
  const bool made = ip({"netns", "add", ns0}) && ip({"netns", "add", ns1}) &&
                    ip({"link", "add", veth0, "type", "veth", "peer", "name", veth1}) &&
                    ip({"link", "set", veth0, "netns", ns0}) && ip({"link", "set", veth1, "netns", ns1}) &&
                    ip({"-n", ns0, "addr", "add", "10.231.0.1/24", "dev", veth0}) &&
                    ip({"-n", ns1, "addr", "add", "10.231.0.2/24", "dev", veth1}) &&
                    ip({"-n", ns0, "link", "set", veth0, "up"}) && ip({"-n", ns1, "link", "set", veth1, "up"}) &&
                    ip({"-n", ns0, "link", "set", "lo", "up"}) && ip({"-n", ns1, "link", "set", "lo", "up"});
  if (!made) GTEST_SKIP() << "cannot create network namespaces here (needs root and iproute2)";
  ScratchDir dir;
  const std::string data = synth_data();
  const Args args = train_args(data, dir / "run", 1) + Args{"--threads", "1", "--dist-timeout", "30"};
  const auto in_namespace = [&](int rank, const std::string& ns) {
    Invocation call = rank_of(rank, "29500", Args{"netns", "exec", ns, HISTOTRAIN_EXE} + args, "10.231.0.1");
    return call;
  };
  Running rank0("ip", in_namespace(0, ns0));
  const Finished rank1 = run_program("ip", in_namespace(1, ns1));
  const Finished ended0 = rank0.finish();
  EXPECT_EQ(ended0.exit_code, 0) << ended0.err;
  EXPECT_EQ(rank1.exit_code, 0) << rank1.err;
  EXPECT_NE(ended0.err.find("master 10.231.0.1:29500"), std::string::npos) << ended0.err;
  EXPECT_EQ(read_json(dir / "run" / "summary.json")["world_size"], 2);
}

}  // namespace
}  // namespace histotrain
