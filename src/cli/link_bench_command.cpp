// histotrain link-bench: all-reduces of growing size among the ranks of a job (started as
// `train` is: torchrun's variables, srun, bench/cluster.sh), the median time of each size, and
// the link's latency and bandwidth fitted to them (distributed/scaling_model.h). Rank 0 writes them as
// JSON for `histotrain scaling-model`.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "cli/commands.h"
#include "distributed/communicator.h"
#include "distributed/rendezvous.h"
#include "distributed/scaling_model.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/files.h"
#include "util/json_text.h"

namespace histotrain {

namespace {

struct LinkBenchOptions {
  std::string out;
  std::string label;
  double max_mib = 64;
  int repeats = 5;
  int timeout_s = 300;
};

// The seconds of one all-reduce of `values` floats: three rounds of `repeats` back to back (after
// three that warm the connections and buffers), each round's mean, the median round. Back to
// back, because a barrier before each would add its exit skew between ranks (milliseconds with
// ranks sharing cores) to the small sizes.
double all_reduce_seconds(Communicator& comm, int64_t values, int repeats) {
  torch::Tensor buffer = torch::ones({values});
  for (int i = 0; i < 3; ++i) comm.all_reduce_sum(buffer);
  std::vector<double> rounds;
  for (int round = 0; round < 3; ++round) {
    comm.barrier();
    const auto start = Clock::now();
    for (int i = 0; i < repeats; ++i) comm.all_reduce_sum(buffer);
    rounds.push_back(seconds_since(start) / repeats);
  }
  std::sort(rounds.begin(), rounds.end());
  // Rank 0's figure on every rank, so that all ranks fit the same link.
  torch::Tensor median = torch::tensor({comm.rank() == 0 ? rounds[1] : 0.0}, torch::kFloat64);
  comm.all_reduce_sum(median);
  return median[0].item<double>();
}

int run_link_bench(const LinkBenchOptions& o) {
  const WorldInfo world = world_from_environment();
  if (world.world_size < 2)
    throw UsageError("link-bench measures the link between ranks: start 2 or more (bench/cluster.sh, srun, torchrun's "
                     "variables)");
  if (world.rank == 0) ensure_writable_dir(fs::absolute(o.out).parent_path());
  auto comm = Communicator::connect(world, "gloo", torch::kCPU, std::chrono::seconds(o.timeout_s));
  nlohmann::json samples = nlohmann::json::array();
  std::vector<AllReduceSample> fitted;
  const int64_t max_values = static_cast<int64_t>(o.max_mib * (1 << 20) / 4);
  for (int64_t values = 1024; values <= max_values; values *= 4) {
    const double seconds = all_reduce_seconds(*comm, values, o.repeats);
    const double bytes = 4.0 * static_cast<double>(values);
    fitted.push_back({bytes, seconds});
    samples.push_back({{"bytes", bytes}, {"seconds", seconds}});
    if (world.rank == 0)
      std::fprintf(stderr, "link-bench: %10.0f bytes  %9.3f ms  %7.2f Gbit/s of buffer\n", bytes, 1000 * seconds,
                   8 * bytes / seconds / 1e9);
  }
  const LinkModel link = fit_link(fitted, world.world_size);
  if (world.rank != 0) return 0;
  const nlohmann::json out = {
      {"label", o.label},
      {"ranks", world.world_size},
      {"backend", comm->backend()},
      {"samples", samples},
      {"alpha_s", link.alpha_s},
      {"beta_s_per_byte", link.beta_s_per_byte},
      {"bandwidth_gbit_s", 8e-9 / link.beta_s_per_byte},
      {"covers", "seconds per all-reduce of float32 buffers among the ranks (rank 0: the median of 3 rounds of "
                 "back-to-back all-reduces), and the ring model fitted to them: t = 2(N-1) alpha + 2(N-1)/N beta "
                 "bytes"}};
  write_file_atomically(o.out, json_text(out, 2) + "\n");
  std::fprintf(stderr, "link-bench: alpha %.1f us per message, bandwidth %.2f Gbit/s; written to %s\n",
               1e6 * link.alpha_s, 8e-9 / link.beta_s_per_byte, o.out.c_str());
  return 0;
}

}  // namespace

Command add_link_bench_command(CLI::App& root) {
  auto o = std::make_shared<LinkBenchOptions>();
  CLI::App* app = root.add_subcommand(
      "link-bench", "Measure the link between the ranks of a job: all-reduces of 4 KiB to --max-mib, and latency "
                    "and bandwidth fitted (for scaling-model)");
  app->add_option("--out", o->out, "JSON file rank 0 writes")->required();
  app->add_option("--label", o->label, "A name for the link, shown in tables and plots (e.g. 1gbit)");
  app->add_option("--max-mib", o->max_mib, "Largest all-reduce, MiB")->capture_default_str()->check(CLI::Range(0.01, 1024.0));
  app->add_option("--repeats", o->repeats, "Back-to-back all-reduces in each of the 3 timed rounds per size (the median round's mean is kept)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  app->add_option("--timeout", o->timeout_s, "Seconds to wait for the other ranks")->capture_default_str()->check(CLI::Range(1, 86400));
  return {app, [o] { return run_link_bench(*o); }};
}

}  // namespace histotrain
