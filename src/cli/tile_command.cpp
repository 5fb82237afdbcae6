// histotrain tile: tiles cut from whole slides, labelled from QuPath annotations or a CSV, with a
// manifest for train --manifest.
#include <cstdio>

#include "cli/commands.h"
#include "slide/cut_tiles.h"
#include "slide/slide_file.h"
#include "util/display_text.h"
#include "util/errors.h"
#include "util/machine.h"

namespace histotrain {

Command add_tile_command(CLI::App& root) {
  auto o = std::make_shared<CutOptions>();
  auto slides = std::make_shared<std::vector<std::string>>();
  auto labels = std::make_shared<std::vector<std::string>>();
  CLI::App* app = root.add_subcommand(
      "tile", "Cut tiles from whole slides (every format OpenSlide reads) into PNGs and a manifest for train --manifest");
  app->add_option("slides", *slides, "Slide files (SVS, NDPI, MRXS, TIFF, ...) or folders of them")->required();
  app->add_option("--out", o->out, "Folder for the tiles and manifest.csv")->required();
  app->add_option("--tile-size", o->tile_px, "Tile side in pixels, as written")->capture_default_str();
  app->add_option("--mpp", o->mpp, "Microns per pixel of the tiles (default: the slide's level 0)");
  app->add_option("--slide-mpp", o->slide_mpp, "A slide's level-0 microns per pixel, where the slide says none");
  app->add_option("--min-tissue", o->min_tissue, "Share of a tile that must be tissue")->capture_default_str();
  app->add_option("--annotations", o->annotations,
                  "QuPath GeoJSON export: a file (one slide) or a folder of SLIDE.geojson; classification names "
                  "become labels");
  app->add_option("--slides", o->slides_csv, "CSV slide,patient,label: one label per slide, the patient as the group");
  app->add_option("--min-label-overlap", o->min_label_overlap,
                  "Share of a tile a region must cover to give it its label")->capture_default_str();
  app->add_option("--background-label", o->background_label, "Label for tissue no region covers (default: skipped)");
  app->add_option("--labels", *labels, "Only these classification names are labels (the others are reported)")
      ->delimiter(',');
  app->add_option("--threads", o->threads, "Reading and encoding threads (0: all cores)");
  app->add_flag("--quiet", o->quiet, "No progress output");
  return {app, [o, slides, labels] {
            check_thread_count(o->threads, "--threads");
            o->labels.insert(labels->begin(), labels->end());
            const std::vector<std::string> files = expand_slide_paths(*slides);
            if (files.empty()) throw UsageError("no slides found in what was given");
            const CutReport report = cut_tiles(files, *o);
            std::printf("wrote %lld tiles and %s\n", static_cast<long long>(report.tiles), printable(report.manifest).c_str());
            if (!report.failed.empty()) {
              std::fprintf(stderr, "%zu of %zu slide(s) could not be cut:\n", report.failed.size(), files.size());
              for (const auto& f : report.failed) std::fprintf(stderr, "  %s\n", f.c_str());
              return 1;
            }
            return 0;
          }};
}

}  // namespace histotrain
