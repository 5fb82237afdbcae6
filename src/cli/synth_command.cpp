// histotrain synth: writes a synthetic dataset in the LC25000 layout, or synthetic whole slides.
#include <algorithm>
#include <cstdio>
#include <limits>

#include "cli/commands.h"
#include "synth/synth.h"
#include "synth/synth_slide.h"
#include "synth/stain_canvas.h"
#include "util/errors.h"
#include "util/files.h"
#include "util/machine.h"

namespace histotrain {

namespace {

struct SlideSynth {
  bool on = false;
  int count = 1;
  SyntheticSlideOptions slide;
};

// slide-1.tif ... slide-N.tif (each with its .geojson), every slide its own seed and an order of
// the classes of its own, so that a region's place says nothing of its class.
int write_slides(const SynthOptions& o, SlideSynth s) {
  if (s.count < 1 || s.count > 1000) throw UsageError("--count must be from 1 to 1000");
  if (!o.overwrite && !is_empty_or_missing(o.out))
    throw Error(o.out + " already holds files; choose an empty folder or give --overwrite");
  ensure_writable_dir(o.out);
  for (int i = 1; i <= s.count; ++i) {
    SyntheticSlideOptions slide = s.slide;
    slide.seed = synth::mix(o.seed, static_cast<uint64_t>(i));
    slide.classes = lc25000_classes();
    synth::Rng order(slide.seed);
    for (size_t k = slide.classes.size(); k > 1; --k) std::swap(slide.classes[k - 1], slide.classes[order.next() % k]);
    slide.out = (fs::path(o.out) / ("slide-" + std::to_string(i) + ".tif")).string();
    const SyntheticSlide written = write_synthetic_slide(slide);
    std::printf("wrote %s (%d x %d, %d levels, %.2f um/px) and its regions %s\n", slide.out.c_str(), slide.width,
                slide.height, written.levels, slide.mpp, written.geojson.c_str());
  }
  return 0;
}

}  // namespace

Command add_synth_command(CLI::App& root) {
  auto options = std::make_shared<SynthOptions>();
  auto slides = std::make_shared<SlideSynth>();
  CLI::App* app = root.add_subcommand(
      "synth", "Write synthetic H&E-like tiles in the LC25000 layout (+ groups.csv), or with --slide whole slides");
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
  app->add_flag("--slide", slides->on,
                "Write whole slides instead: pyramidal tiled TIFFs with one region of each class, glass, pen marks, "
                "dust and a fold, and a GeoJSON of the true regions beside each");
  app->add_option("--count", slides->count, "--slide: how many slides")->capture_default_str();
  app->add_option("--width", slides->slide.width, "--slide: level-0 width, px")->capture_default_str();
  app->add_option("--height", slides->slide.height, "--slide: level-0 height, px")->capture_default_str();
  app->add_option("--mpp", slides->slide.mpp, "--slide: microns per level-0 pixel")->capture_default_str();
  return {app, [options, slides] {
            check_thread_count(options->threads, "--threads");
            if (slides->on) return write_slides(*options, *slides);
            const SynthReport report = write_synthetic_dataset(*options);
            std::printf("wrote %lld tiles to %s (groups: %s)\n", static_cast<long long>(report.tiles),
                        options->out.c_str(), report.groups_csv.c_str());
            return 0;
          }};
}

}  // namespace histotrain
