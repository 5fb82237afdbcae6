#include "synth/synth.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <map>
#include <thread>

#include <tbb/global_control.h>
#include <tbb/parallel_for.h>

#include "data/jpeg.h"
#include "synth/stain_canvas.h"
#include "util/errors.h"
#include "util/files.h"
#include "util/progress.h"

namespace histotrain {

using synth::kPi;
using synth::mix;
using synth::Rng;

namespace {

// One of the 8 symmetries of the square (flips and 90-degree rotations).
RgbImage dihedral(const RgbImage& src, int which) {
  const int n = src.width;
  RgbImage out(n, n);
  for (int y = 0; y < n; ++y) {
    for (int x = 0; x < n; ++x) {
      int sx = x, sy = y;
      if (which & 1) sx = n - 1 - sx;
      if (which & 2) sy = n - 1 - sy;
      if (which & 4) std::swap(sx, sy);
      std::copy_n(src.row(sy) + 3 * sx, 3, out.row(y) + 3 * x);
    }
  }
  return out;
}

}  // namespace

RgbImage rotate_and_crop(const RgbImage& src, double degrees) {
  const int n = src.width;
  const double theta = degrees * kPi / 180, c = (n - 1) / 2.0;
  const double zoom = std::cos(std::abs(theta)) + std::sin(std::abs(theta));  // the inscribed square's scale
  const double ct = std::cos(theta) / zoom, st = std::sin(theta) / zoom;
  RgbImage out(n, n);
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) {
      const double sx = c + (x - c) * ct - (y - c) * st, sy = c + (x - c) * st + (y - c) * ct;
      const int x0 = std::clamp(static_cast<int>(std::floor(sx)), 0, n - 2);
      const int y0 = std::clamp(static_cast<int>(std::floor(sy)), 0, n - 2);
      const double fx = std::clamp(sx - x0, 0.0, 1.0), fy = std::clamp(sy - y0, 0.0, 1.0);
      for (int k = 0; k < 3; ++k) {
        const double v = src.row(y0)[3 * x0 + k] * (1 - fx) * (1 - fy) + src.row(y0)[3 * (x0 + 1) + k] * fx * (1 - fy) +
                         src.row(y0 + 1)[3 * x0 + k] * (1 - fx) * fy + src.row(y0 + 1)[3 * (x0 + 1) + k] * fx * fy;
        out.row(y)[3 * x + k] = static_cast<uint8_t>(std::lround(v));
      }
    }
  return out;
}

namespace {

struct ClassLayout {
  const char* folder;  // under lung_colon_image_set/
  const char* prefix;  // LC25000's file name prefix
};

ClassLayout layout_for(const std::string& class_name) {
  static const std::map<std::string, ClassLayout> layouts = {
      {"colon_aca", {"colon_image_sets", "colonca"}}, {"colon_n", {"colon_image_sets", "colonn"}},
      {"lung_aca", {"lung_image_sets", "lungaca"}},   {"lung_n", {"lung_image_sets", "lungn"}},
      {"lung_scc", {"lung_image_sets", "lungscc"}}};
  return layouts.at(class_name);
}

}  // namespace

namespace {

void check_options(const SynthOptions& options) {
  if (options.per_class < 1) throw UsageError("--per-class must be at least 1");
  if (options.size < 16 || options.size > 4096) throw UsageError("--size must be between 16 and 4096 px");
  if (options.copies < 1 || options.copies > 8) throw UsageError("--copies must be between 1 and 8");
  if (options.max_rotation < 0 || options.max_rotation > 45)
    throw UsageError("--max-rotation must be between 0 and 45 degrees");
  if (options.quality < 1 || options.quality > 100) throw UsageError("--quality must be between 1 and 100");
}

// One source scene of a class, saved as `tiles` flipped/rotated copies named from `first_tile`.
struct Scene {
  size_t class_index;
  int scene, first_tile, tiles;
};

std::vector<Scene> plan_scenes(const SynthOptions& options) {
  std::vector<Scene> scenes;
  for (size_t k = 0; k < lc25000_classes().size(); ++k)
    for (int first = 0, s = 0; first < options.per_class; first += options.copies, ++s)
      scenes.push_back({k, s, first, std::min(options.copies, options.per_class - first)});
  return scenes;
}

// Renders the scene once and writes its copies; returns their groups.csv rows.
std::vector<std::string> write_scene(const SynthOptions& options, const fs::path& root, const Scene& sc) {
  const std::string& cls = lc25000_classes()[sc.class_index];
  const ClassLayout layout = layout_for(cls);
  const uint64_t scene_seed = mix(mix(options.seed, sc.class_index + 1), static_cast<uint64_t>(sc.scene));
  const RgbImage source = render_synthetic_tile(cls, options.size, scene_seed);
  Rng symmetry(scene_seed ^ 0x5bd1e995ull);
  const int offset = symmetry.integer(1, 7);  // copies after the first use distinct symmetries
  const std::string group = cls + "-s" + std::to_string(sc.scene);
  std::vector<std::string> rows;
  for (int c = 0; c < sc.tiles; ++c) {
    const std::string name = std::string(layout.prefix) + std::to_string(sc.first_tile + c + 1) + ".jpeg";
    RgbImage tile = c == 0 ? source : dihedral(source, (offset + c - 1) % 7 + 1);
    if (c > 0 && options.max_rotation > 0)
      tile = rotate_and_crop(tile, symmetry.uniform(-options.max_rotation, options.max_rotation));
    const auto bytes = encode_jpeg(tile, options.quality);
    const fs::path path = root / "lung_colon_image_set" / layout.folder / cls / name;
    write_file_atomically(path, std::string(bytes.begin(), bytes.end()));
    rows.push_back(name + "," + cls + "," + group);
  }
  return rows;
}

}  // namespace

SynthReport write_synthetic_dataset(const SynthOptions& options) {
  check_options(options);
  const fs::path root(options.out);
  // LC25000's own file names are the ones written here: a folder holding a tile set (that one,
  // or one written before) is not overwritten unless asked.
  if (!options.overwrite && !is_empty_or_missing(root))
    throw Error("'" + root.string() + "' is not empty; choose a new folder for the tiles, or --overwrite to write "
                "over what is there");
  ensure_writable_dir(root);
  const auto& classes = lc25000_classes();
  for (const auto& cls : classes) ensure_writable_dir(root / "lung_colon_image_set" / layout_for(cls).folder / cls);

  const std::vector<Scene> scenes = plan_scenes(options);
  std::vector<std::vector<std::string>> csv_rows(scenes.size());
  const int64_t total = static_cast<int64_t>(classes.size()) * options.per_class;
  Progress progress("synthesizing " + std::to_string(total) + " tiles of " + std::to_string(options.size) + " px", total,
                    "tiles", options.quiet);
  std::atomic<int64_t> done{0};
  const int threads = options.threads > 0 ? options.threads : static_cast<int>(std::thread::hardware_concurrency());
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, std::max(1, threads));
  tbb::parallel_for(size_t{0}, scenes.size(), [&](size_t i) {
    csv_rows[i] = write_scene(options, root, scenes[i]);
    progress.update(done += scenes[i].tiles);
  });
  progress.finish();

  std::string csv = "filename,label,group_id\n";
  for (const auto& rows : csv_rows)
    for (const auto& row : rows) csv += row + "\n";
  SynthReport report;
  report.tiles = total;
  report.groups_csv = (root / "groups.csv").string();
  write_file_atomically(report.groups_csv, csv);
  return report;
}

}  // namespace histotrain
