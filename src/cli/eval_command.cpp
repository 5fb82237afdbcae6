// histotrain eval: a checkpoint's accuracy, per-class precision/recall/F1, macro-F1 and confusion
// matrix on a folder of class folders (any subset of the checkpoint's classes).
#include <cstdio>

#include "cli/commands.h"
#include "core/checkpoint.h"
#include "core/evaluate.h"
#include "core/runtime.h"
#include "data/batches.h"
#include "data/dataset.h"
#include "util/errors.h"
#include "util/json_text.h"
#include "util/machine.h"

namespace histotrain {

namespace {

struct EvalOptions {
  std::string checkpoint, data, cache_dir, device = "cpu", amp;
  int batch_size = 64, threads = 0, workers = 0;
  bool json = false, quiet = false, tta = false, trust_checkpoint = false;
};

void print_table(const nlohmann::json& r) {
  std::printf("accuracy %.4f  macro-F1 %.4f  on %lld images\n\n", r["accuracy"].get<double>(),
              r["macro_f1"].get<double>(), r["images"].get<long long>());
  std::printf("%-12s %9s %9s %9s %8s\n", "class", "precision", "recall", "f1", "support");
  for (const auto& name : r["classes"]) {
    const auto& k = r["per_class"][name.get<std::string>()];
    std::printf("%-12s %9.4f %9.4f %9.4f %8lld\n", name.get<std::string>().c_str(), k["precision"].get<double>(),
                k["recall"].get<double>(), k["f1"].get<double>(), k["support"].get<long long>());
  }
  std::printf("\nconfusion matrix (rows: truth, columns: predicted)\n");
  for (const auto& row : r["confusion_matrix"]) {
    for (const auto& v : row) std::printf("%7lld", v.get<long long>());
    std::printf("\n");
  }
}

int run_eval(const EvalOptions& o) {
  set_threads(o.threads);
  const torch::Device device = parse_device(o.device);
  TrainedModel trained = open_trained_model(o.checkpoint, device, o.amp, o.trust_checkpoint);
  const auto& classes = trained.classes;

  DataOptions data_options;
  data_options.root = o.data;
  data_options.image_size = trained.image_size;
  data_options.cache_dir = o.cache_dir;
  data_options.workers = o.workers;
  data_options.quiet = o.quiet;
  const TileDataset data = load_dataset(data_options, &classes);
  if (!o.quiet) std::fprintf(stderr, "%s\n", describe(data).c_str());
  std::vector<int64_t> items(static_cast<size_t>(data.size()));
  for (int64_t i = 0; i < data.size(); ++i) items[i] = i;
  const auto format = trained.channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
  const EvalResult result = evaluate(trained.model, BatchMaker(data, device, format), items,
                                     static_cast<int64_t>(classes.size()), o.batch_size, trained.precision, o.tta);
  nlohmann::json report = result.confusion.to_json(classes);
  report["loss"] = result.loss;
  report["tta"] = o.tta;
  report["skipped_images"] = data.cache->failed();
  report["checkpoint"] = trained.run.string();
  report["data"] = data.scan.root;
  report["seconds"] = result.seconds;
  report["amp"] = precision_name(trained.precision);
  if (o.json) {
    std::printf("%s\n", json_text(report, 2).c_str());
  } else {
    print_table(report);
  }
  return 0;
}

}  // namespace

Command add_eval_command(CLI::App& root) {
  auto o = std::make_shared<EvalOptions>();
  CLI::App* app = root.add_subcommand("eval", "Evaluate a checkpoint on a folder of class folders");
  add_checkpoint_flags(app, o->checkpoint, o->trust_checkpoint);
  app->add_option("--data", o->data, "Dataset root; class folders are matched to the checkpoint's classes")->required();
  app->add_flag("--json", o->json, "Print the report as JSON");
  app->add_option("--batch-size", o->batch_size, "Images per forward pass")->capture_default_str();
  app->add_option("--threads", o->threads, "Intra-op threads (0: all cores)");
  app->add_option("--workers", o->workers, "JPEG decode threads (0: all cores)");
  app->add_option("--cache-dir", o->cache_dir, "Tile cache folder");
  app->add_option("--device", o->device, "cpu | cuda | cuda:N")->capture_default_str();
  app->add_option("--amp", o->amp, "none | bf16 | fp16 (default: as trained)");
  app->add_flag("--tta", o->tta, "Classify each tile from the mean over its 8 flips and rotations");
  app->add_flag("--quiet", o->quiet, "No progress output");
  add_max_image_pixels_flag(app);
  return {app, [o] {
            if (o->batch_size < 1) throw UsageError("--batch-size must be at least 1");
            check_thread_count(o->workers, "--workers");
            return run_eval(*o);
          }};
}

}  // namespace histotrain
