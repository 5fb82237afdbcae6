// histotrain groups: finds which tiles are near-copies of one source image and writes groups.csv.
#include <cstdio>

#include "cli/commands.h"
#include "core/runtime.h"
#include "leakage/group_agreement.h"
#include "leakage/group_finder.h"
#include "data/groups.h"
#include "util/errors.h"
#include "util/files.h"
#include "util/progress.h"

namespace histotrain {

namespace {

struct GroupsArgs {
  std::string data, out, reference;
  NearCopyOptions near;
  int threads = 0;
  bool quiet = false;
};

void print_agreement(const ScanResult& scan, const FoundGroups& found, const std::string& reference_csv) {
  const auto csv = read_groups_csv(reference_csv);
  const GroupAssignment reference = assign_groups(scan, &csv);
  const GroupAgreement a = compare_groupings(found.group_of_image, reference.group_of_image);
  std::printf("agreement with %s: pair precision %.3f, pair recall %.3f, adjusted Rand index %.3f "
              "(%lld found groups, %lld reference groups",
              reference_csv.c_str(), a.pair_precision, a.pair_recall, a.adjusted_rand,
              static_cast<long long>(a.found_groups), static_cast<long long>(a.reference_groups));
  if (reference.missing) std::printf("; %lld images not in the reference", static_cast<long long>(reference.missing));
  std::printf(")\n");
}

int run_groups(const GroupsArgs& args) {
  validate_near_copy_options(args.near);
  set_threads(args.threads);
  const ScanResult scan = scan_image_folder(args.data);
  const FoundGroups found = find_groups(scan, args.near, args.threads, args.quiet);
  write_file_atomically(args.out, groups_csv_text(scan, found.group_of_image));
  std::printf("%lld images -> %lld groups (%lld candidate pairs scored, %lld near-copy links) in %s; wrote %s\n",
              static_cast<long long>(scan.images.size()), static_cast<long long>(found.groups),
              static_cast<long long>(found.pairs_scored), static_cast<long long>(found.links),
              format_duration(found.seconds).c_str(), args.out.c_str());
  if (!found.errors.empty()) std::printf("%zu image(s) could not be decoded; each is a group of its own:\n", found.errors.size());
  for (size_t i = 0; i < found.errors.size() && i < 5; ++i) std::printf("  %s\n", found.errors[i].c_str());
  if (!args.reference.empty()) print_agreement(scan, found, args.reference);
  return 0;
}

}  // namespace

void add_near_copy_flags(CLI::App* app, NearCopyOptions& options) {
  app->add_option("--threshold", options.threshold, "Match score (0-1) from which two tiles are near-copies")
      ->capture_default_str();
  app->add_option("--neighbours", options.neighbours, "Candidates compared per tile")->capture_default_str();
}

void validate_near_copy_options(const NearCopyOptions& options) {
  if (options.threshold <= 0 || options.threshold >= 1) throw UsageError("--threshold must be between 0 and 1");
  if (options.neighbours < 1) throw UsageError("--neighbours must be at least 1");
}

Command add_groups_command(CLI::App& root) {
  auto args = std::make_shared<GroupsArgs>();
  CLI::App* app = root.add_subcommand(
      "groups", "Group near-copies (rotated, flipped, cropped, re-encoded tiles of one source image) into groups.csv");
  app->add_option("--data", args->data, "Dataset folder (class folders of images)")->required();
  app->add_option("--out", args->out, "groups.csv to write (filename,label,group_id)")->required();
  app->add_option("--reference", args->reference, "Known groups (CSV) to compare with: pair precision/recall, ARI");
  add_near_copy_flags(app, args->near);
  app->add_option("--threads", args->threads, "Threads (0: all cores)")->capture_default_str();
  app->add_flag("--quiet", args->quiet, "No progress output");
  add_max_image_pixels_flag(app);
  return {app, [args] { return run_groups(*args); }};
}

}  // namespace histotrain
