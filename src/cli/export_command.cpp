// histotrain export: a run's model as a file that runs without histotrain (TorchScript, ONNX).
#include <cstdio>

#include "cli/commands.h"
#include "core/checkpoint.h"
#include "core/fast_inference.h"
#include "model/model_export.h"
#include "util/errors.h"
#include "util/files.h"

namespace histotrain {

namespace {

struct ExportOptions {
  std::string checkpoint, onnx, torchscript;
  bool probabilities = false, trust_checkpoint = false;
};

void write_export(const std::string& path, const std::string& bytes, const char* what) {
  write_file_atomically(path, bytes);
  std::fprintf(stderr, "wrote %s (%s, %.1f MB)\n", path.c_str(), what, static_cast<double>(bytes.size()) / 1e6);
}

int run_export(const ExportOptions& o) {
  // fp32 on the CPU whatever the run trained in; the exporters store the weights contiguous.
  TrainedModel trained = open_trained_model(o.checkpoint, torch::kCPU, "none", o.trust_checkpoint);
  const ExportSettings settings = export_settings(trained, o.probabilities);
  if (!o.onnx.empty()) write_export(o.onnx, onnx_bytes(*trained.model, settings), "ONNX, opset 13");
  if (!o.torchscript.empty())
    write_export(o.torchscript, torchscript_bytes(*trained.model, settings), "TorchScript");
  std::fprintf(stderr,
               "input: float RGB in [0, 1], NCHW, %d x %d, any batch (normalised inside); output: logits of %s%s\n",
               settings.image_size, settings.image_size, [&] {
                 std::string names;
                 for (const auto& c : settings.classes) names += (names.empty() ? "" : ", ") + c;
                 return names;
               }().c_str(),
               settings.temperature > 0 ? "; and probabilities (softmax at the checkpoint's temperature)" : "");
  if (trained.stain.method != StainMethod::none)
    std::fprintf(stderr,
                 "note: the model was trained on stain-normalised tiles (%s); the exported file does not normalise "
                 "stains: feed it tiles normalised the same way (checkpoint.json's \"stain\")\n",
                 describe(trained.stain).c_str());
  return 0;
}

}  // namespace

Command add_export_command(CLI::App& root) {
  auto o = std::make_shared<ExportOptions>();
  CLI::App* app = root.add_subcommand("export", "Write a run's model as TorchScript or ONNX, to run without histotrain");
  add_checkpoint_flags(app, o->checkpoint, o->trust_checkpoint);
  app->add_option("--onnx", o->onnx, "Write an ONNX model here (dynamic batch, normalisation inside)");
  app->add_option("--torchscript", o->torchscript,
                  "Write a TorchScript module here: torch.jit.load(FILE)(x) gives the logits");
  app->add_flag("--probabilities", o->probabilities,
                "ONNX: a second output, the softmax at the checkpoint's temperature (TorchScript always has "
                "probabilities(x))");
  return {app, [o] {
            if (o->onnx.empty() && o->torchscript.empty()) throw UsageError("export needs --onnx FILE or --torchscript FILE");
            return run_export(*o);
          }};
}

}  // namespace histotrain
