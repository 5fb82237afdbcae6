// histotrain restain: a copy of a tile folder in another lab's colours, to measure how a model
// copes (bench/stain_shift.sh): HED perturbation of a chosen strength, or each tile's stains moved
// towards another lab's.
#include <tbb/parallel_for.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <set>

#include "cli/commands.h"
#include "core/runtime.h"
#include "data/decode.h"
#include "data/groups.h"
#include "data/png_encode.h"
#include "data/scan.h"
#include "data/stain_shift.h"
#include "util/csv.h"
#include "util/display_text.h"
#include "util/errors.h"
#include "util/files.h"
#include "util/progress.h"

namespace histotrain {

namespace {

namespace fs = std::filesystem;

enum class ShiftKind { hed, lab };

}  // namespace

template <>
struct Spellings<ShiftKind> {
  static constexpr std::pair<ShiftKind, const char*> all[] = {{ShiftKind::hed, "hed"}, {ShiftKind::lab, "lab"}};
};

namespace {

struct RestainArgs {
  std::string data, out, images, groups, lab_reference;
  ShiftKind shift = ShiftKind::hed;
  double strength = 0.1;
  uint64_t seed = 0;
  int threads = 0;
  bool quiet = false;
};

// The scanned images to restain: all, or those a list names (by path or file name).
std::vector<const ImageFile*> chosen_images(const ScanResult& scan, const std::string& list) {
  std::vector<const ImageFile*> chosen;
  std::set<std::string> names;
  if (!list.empty())
    for (const std::string& line : read_list_file(list)) names.insert(fs::path(line).filename().string());
  for (const ImageFile& image : scan.images)
    if (list.empty() || names.count(fs::path(image.path).filename().string())) chosen.push_back(&image);
  if (chosen.empty()) throw Error("no image of " + printable(scan.root) + " is left to restain");
  return chosen;
}

// The other lab's stains: fitted on a tile of theirs, else Macenko's published reference.
MacenkoStains lab_stains(const std::string& reference) {
  if (reference.empty()) return macenko_published_stains();
  const DecodeResult decoded = decode_image_file(reference);
  if (!decoded.ok) throw Error("--lab-reference " + printable(reference) + ": " + printable(decoded.error));
  const auto stains = fit_macenko(decoded.image.pixels.data(), int64_t{decoded.image.width} * decoded.image.height);
  if (!stains) throw Error("--lab-reference " + printable(reference) + " holds too little stain to fit");
  return *stains;
}

// out/CLASS/NAME.png for each image, written in parallel; returns the tiles left as they were.
int64_t write_restained(const std::vector<const ImageFile*>& images, const RestainArgs& args,
                        const MacenkoStains& lab, std::vector<std::string>& errors) {
  std::atomic<int64_t> untouched{0}, done{0};
  std::mutex errors_mutex;
  Progress progress("restaining " + std::to_string(images.size()) + " tiles", static_cast<int64_t>(images.size()),
                    "img", args.quiet);
  tbb::parallel_for(size_t{0}, images.size(), [&](size_t i) {
    const ImageFile& image = *images[i];
    DecodeResult decoded = decode_image_file(image.path);
    if (!decoded.ok) {
      std::lock_guard<std::mutex> lock(errors_mutex);
      errors.push_back(image.path + ": " + decoded.error);
      return;
    }
    uint8_t* rgb = decoded.image.pixels.data();
    const int64_t pixels = int64_t{decoded.image.width} * decoded.image.height;
    if (args.shift == ShiftKind::hed) {
      Fnv1a name;  // the draw follows the tile, whichever others are restained with it
      name.add(fs::path(image.path).filename().string());
      shift_hed(rgb, pixels, args.strength, name.value ^ args.seed);
    }
    else if (!shift_towards_lab(rgb, pixels, lab, args.strength))
      ++untouched;
    const fs::path to = fs::path(args.out) / image.class_name / (fs::path(image.path).stem().string() + ".png");
    write_file_atomically(to, encode_png(decoded.image));
    progress.update(++done);
  });
  progress.finish();
  return untouched;
}

// groups.csv for the copies: each written file's new name with its source's group.
void write_groups(const std::vector<const ImageFile*>& images, const RestainArgs& args) {
  const auto groups = read_groups_csv(args.groups);
  std::string csv = "filename,label,group_id\n";
  for (const ImageFile* image : images) {
    const auto found = groups.find(fs::path(image->path).filename().string());
    if (found == groups.end()) continue;
    csv += csv_field(fs::path(image->path).stem().string() + ".png") + "," + csv_field(image->class_name) + "," +
           csv_field(found->second) + "\n";
  }
  write_file_atomically(fs::path(args.out) / "groups.csv", csv);
}

void check_args(const RestainArgs& args) {
  if (!(args.strength >= 0 && args.strength <= 1))
    throw UsageError(args.shift == ShiftKind::hed ? "--strength of a hed shift is its sigma, in [0, 1]"
                                                  : "--strength of a lab shift is the share of the way to the other "
                                                    "lab, in [0, 1]");
  if (args.shift == ShiftKind::hed && !args.lab_reference.empty()) throw UsageError("--lab-reference goes with --shift lab");
  std::error_code ec;
  if (fs::exists(args.out, ec) && !fs::is_empty(args.out, ec))
    throw UsageError("--out " + printable(args.out) + " exists and is not empty");
  const fs::path data = fs::weakly_canonical(args.data), out = fs::weakly_canonical(args.out);
  if (out.string().rfind(data.string() + "/", 0) == 0 || out == data)
    throw UsageError("--out must lie outside --data (the copies would be scanned as data)");
}

int run_restain(const RestainArgs& args) {
  check_args(args);
  set_threads(args.threads);
  const ScanResult scan = scan_image_folder(args.data);
  const std::vector<const ImageFile*> images = chosen_images(scan, args.images);
  const MacenkoStains lab = lab_stains(args.lab_reference);
  ensure_writable_dir(args.out);
  std::set<std::string> classes;
  for (const ImageFile* image : images) classes.insert(image->class_name);
  for (const std::string& name : classes) {
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
      throw Error("class folder name " + printable(name) + " cannot be written as a folder");
    ensure_writable_dir(fs::path(args.out) / name);
  }
  std::vector<std::string> errors;
  const int64_t untouched = write_restained(images, args, lab, errors);
  if (!args.groups.empty()) write_groups(images, args);
  std::printf("restained %zu of %zu tiles (%s, strength %g) into %s", images.size() - errors.size(), images.size(),
              spelling(args.shift).c_str(), args.strength, printable(args.out).c_str());
  if (untouched) std::printf("; %lld with too little stain to fit were copied as they were", static_cast<long long>(untouched));
  std::printf("\n");
  for (size_t i = 0; i < errors.size() && i < 5; ++i) std::fprintf(stderr, "skipped %s\n", printable(errors[i]).c_str());
  return errors.empty() ? 0 : 1;
}

}  // namespace

Command add_restain_command(CLI::App& root) {
  auto args = std::make_shared<RestainArgs>();
  CLI::App* app = root.add_subcommand(
      "restain", "Copy a tile folder in another lab's colours (PNG), to measure a model's robustness to stain");
  app->add_option("--data", args->data, "Dataset folder (class folders of images)")->required();
  app->add_option("--out", args->out, "Folder to write (class folders of PNGs; must be new or empty)")->required();
  app->add_option("--images", args->images,
                  "Only these tiles: a list of paths or file names, one per line (e.g. a run's val_images.txt)");
  app->add_option("--groups", args->groups, "groups.csv of --data: written for the copies, under their new names");
  app->add_option_function<std::string>(
         "--shift", [args](const std::string& text) { args->shift = *from_spelling<ShiftKind>(text); },
                  "hed: each tile's H, E and residual concentrations scaled by U(1-S, 1+S) and shifted by U(-S, S) "
                  "(S = --strength); lab: each tile's Macenko stains moved the share --strength of the way to "
                  "another lab's (default hed)")
      ->check(CLI::IsMember({"hed", "lab"}));
  app->add_option("--strength", args->strength, "How far: sigma for hed, a share in [0, 1] for lab")->capture_default_str();
  app->add_option("--lab-reference", args->lab_reference,
                  "A tile from the other lab (default: Macenko et al.'s published reference stains)");
  app->add_option("--seed", args->seed, "Seed of the hed draws (a tile's draw depends on it and on the tile)")
      ->capture_default_str();
  app->add_option("--threads", args->threads, "Threads (0: all cores)")->capture_default_str();
  app->add_flag("--quiet", args->quiet, "No progress output");
  add_max_image_pixels_flag(app);
  return {app, [args] { return run_restain(*args); }};
}

}  // namespace histotrain
