// histotrain split-audit: how many test images have a near-copy among the training images.
#include <cstdio>

#include "cli/commands.h"
#include "core/runtime.h"
#include "leakage/split_audit.h"
#include "util/files.h"
#include "util/json_text.h"
#include "util/progress.h"

namespace histotrain {

namespace {

struct AuditArgs {
  std::string train, test, json;
  NearCopyOptions near;
  int examples = 5;
  int threads = 0;
  bool quiet = false;
};

int run_audit(const AuditArgs& args) {
  validate_near_copy_options(args.near);
  set_threads(args.threads);
  const ImageList train = read_image_list(args.train), test = read_image_list(args.test);
  const AuditReport report = audit_split(train, test, args.near, args.threads, args.quiet, args.examples);
  std::printf("%s", format_audit(report).c_str());
  std::printf("audited in %s\n", format_duration(report.seconds).c_str());
  if (!args.json.empty()) write_file_atomically(args.json, json_text(audit_json(report), 2) + "\n");
  return 0;
}

}  // namespace

Command add_split_audit_command(CLI::App& root) {
  auto args = std::make_shared<AuditArgs>();
  CLI::App* app = root.add_subcommand(
      "split-audit", "Count test images that have a near-copy (same source image) among the training images");
  app->add_option("--train", args->train, "Training images: a dataset folder or a list file (a path per line)")
      ->required();
  app->add_option("--test", args->test, "Test images: a dataset folder or a list file")->required();
  add_near_copy_flags(app, args->near);
  app->add_option("--examples", args->examples, "Leaks to show")->capture_default_str();
  app->add_option("--json", args->json, "Also write the audit as JSON here");
  app->add_option("--threads", args->threads, "Threads (0: all cores)")->capture_default_str();
  app->add_flag("--quiet", args->quiet, "No progress output");
  return {app, [args] { return run_audit(*args); }};
}

}  // namespace histotrain
