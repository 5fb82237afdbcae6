// histotrain launch -n N [--threads-per-rank T] [--port P] -- train ...
#include "cli/commands.h"
#include "distributed/launcher.h"

namespace histotrain {

Command add_launch_command(CLI::App& root) {
  auto options = std::make_shared<LaunchOptions>();
  CLI::App* app = root.add_subcommand(
      "launch", "Run N local data-parallel ranks of a histotrain command (like torchrun --nproc_per_node N)");
  app->add_option("-n,--ranks", options->ranks, "Number of local ranks")->required();
  app->add_option("--threads-per-rank", options->threads_per_rank, "Intra-op threads per rank (0: cores / N)")
      ->capture_default_str();
  app->add_option("--port", options->port, "Rendezvous port on 127.0.0.1 (0: a free one)")->capture_default_str();
  app->add_option("--grace", options->grace_seconds, "Seconds between SIGTERM and SIGKILL when stopping ranks")
      ->capture_default_str();
  app->add_option("command", options->args, "The command each rank runs, after --")->required();
  return {app, [options] { return launch_local_ranks(*options); }};
}

}  // namespace histotrain
