// histotrain synth: writes a synthetic dataset in the LC25000 layout.
#include <cstdio>
#include <limits>

#include "cli/commands.h"
#include "synth/synth.h"
#include "util/machine.h"

namespace histotrain {

Command add_synth_command(CLI::App& root) {
  auto options = std::make_shared<SynthOptions>();
  CLI::App* app = root.add_subcommand("synth", "Write synthetic H&E-like tiles in the LC25000 layout (+ groups.csv)");
  app->add_option("--out", options->out, "Folder to create")->required();
  app->add_option("--per-class", options->per_class, "Tiles per class")->capture_default_str();
  app->add_option("--size", options->size, "Tile side in pixels")->capture_default_str();
  app->add_option("--seed", options->seed, "Random seed (same seed, same tiles)")
      ->capture_default_str()
      ->check(integer_in_range(0, std::numeric_limits<uint64_t>::max()));
  app->add_option("--copies", options->copies, "Flipped/rotated copies per source scene (1-8)")->capture_default_str();
  app->add_option("--max-rotation", options->max_rotation,
                  "Copies after the first are also rotated by up to this many degrees (LC25000: 25)")
      ->capture_default_str();
  app->add_option("--quality", options->quality, "JPEG quality")->capture_default_str();
  app->add_option("--threads", options->threads, "Threads (0: all cores)")->capture_default_str();
  app->add_flag("--quiet", options->quiet, "No progress output");
  app->add_flag("--overwrite", options->overwrite, "Write into --out even when it already holds files");
  return {app, [options] {
            check_thread_count(options->threads, "--threads");
            const SynthReport report = write_synthetic_dataset(*options);
            std::printf("wrote %lld tiles to %s (groups: %s)\n", static_cast<long long>(report.tiles),
                        options->out.c_str(), report.groups_csv.c_str());
            return 0;
          }};
}

}  // namespace histotrain
