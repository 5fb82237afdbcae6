// histotrain predict: class and probabilities for individual images.
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "core/checkpoint.h"
#include "core/runtime.h"
#include "data/batches.h"
#include "data/scan.h"
#include "data/tile_cache.h"
#include "util/csv.h"
#include "util/errors.h"
#include "util/files.h"

namespace histotrain {

namespace {

struct PredictOptions {
  std::string checkpoint, csv, device = "cpu", amp, calibration;
  std::vector<std::string> files;
  int threads = 0, batch_size = 64;
  bool trust_checkpoint = false;
};

// Files as given; folders expand to the images below them, sorted.
std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const auto& input : inputs) {
    if (!std::filesystem::is_directory(input)) {
      files.push_back(input);
      continue;
    }
    std::vector<std::string> found;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(input))
      if (entry.is_regular_file() && is_image_file(entry.path().string())) found.push_back(entry.path().string());
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

struct Prediction {
  std::string path, error;
  std::vector<float> probabilities;
};

// `temperature` divides the logits (1: the model's own probabilities).
std::vector<Prediction> predict(TrainedModel& trained, const std::vector<std::string>& files, torch::Device device,
                                int batch_size, double temperature) {
  const int size = trained.image_size;
  const auto format = trained.channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
  torch::NoGradGuard no_grad;
  std::vector<Prediction> out(files.size());
  const size_t tile_bytes = static_cast<size_t>(size) * size * 3;
  for (size_t first = 0; first < files.size(); first += static_cast<size_t>(batch_size)) {
    const size_t n = std::min(files.size() - first, static_cast<size_t>(batch_size));
    std::vector<uint8_t> pixels(n * tile_bytes);
    std::vector<int64_t> ok;
    for (size_t i = 0; i < n; ++i) {
      out[first + i].path = files[first + i];
      if (decode_tile(files[first + i], size, pixels.data() + ok.size() * tile_bytes, &out[first + i].error))
        ok.push_back(static_cast<int64_t>(first + i));
    }
    if (ok.empty()) continue;
    auto images = torch::from_blob(pixels.data(), {static_cast<int64_t>(ok.size()), size, size, 3}, torch::kUInt8);
    torch::Tensor logits;
    {
      AutocastScope autocast(trained.precision, device);
      logits = trained.model->forward(normalize_uint8_nhwc(images.to(device), format, trained.normalization));
    }
    const auto probs = torch::softmax(logits.to(torch::kFloat32) / temperature, 1).to(torch::kCPU);
    for (size_t j = 0; j < ok.size(); ++j) {
      const auto row = probs[static_cast<int64_t>(j)].contiguous();
      out[ok[j]].probabilities.assign(row.data_ptr<float>(), row.data_ptr<float>() + row.numel());
    }
  }
  return out;
}

int run_predict(const PredictOptions& o) {
  set_threads(o.threads);
  const torch::Device device = parse_device(o.device);
  TrainedModel trained = open_trained_model(o.checkpoint, device, o.amp, o.trust_checkpoint);
  const auto& classes = trained.classes;
  const std::vector<std::string> files = expand_inputs(o.files);
  if (files.empty()) throw UsageError("no images given");
  if (o.calibration == "temperature" && trained.temperature <= 0)
    throw Error("--calibration temperature: checkpoint '" + trained.run.string() + "' has no temperature");
  const bool calibrated = o.calibration != "none" && trained.temperature > 0;
  if (calibrated)
    std::fprintf(stderr, "probabilities at the checkpoint's temperature %.3f (fitted on its validation split; "
                 "--calibration none for the model's own)\n", trained.temperature);
  const auto predictions = predict(trained, files, device, o.batch_size, calibrated ? trained.temperature : 1.0);

  std::string csv = "path,class,probability";
  for (const auto& c : classes) csv += "," + csv_field("p_" + c);
  csv += ",error\n";
  int failed = 0;
  for (const auto& p : predictions) {
    if (p.probabilities.empty()) {
      ++failed;
      csv += csv_field(p.path) + ",,,";
      for (size_t k = 0; k < classes.size(); ++k) csv += ",";
      csv += csv_field(p.error) + "\n";
      if (o.csv.empty()) std::printf("%s\terror: %s\n", p.path.c_str(), p.error.c_str());
      continue;
    }
    const size_t best = static_cast<size_t>(
        std::max_element(p.probabilities.begin(), p.probabilities.end()) - p.probabilities.begin());
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6f", p.probabilities[best]);
    csv += csv_field(p.path) + "," + csv_field(classes[best]) + "," + buf;
    for (float v : p.probabilities) {
      std::snprintf(buf, sizeof buf, ",%.6f", v);
      csv += buf;
    }
    csv += ",\n";
    if (o.csv.empty()) std::printf("%s\t%s\t%.4f\n", p.path.c_str(), classes[best].c_str(), p.probabilities[best]);
  }
  if (!o.csv.empty()) {
    write_file_atomically(o.csv, csv);  // a full disk is an error, never a CSV cut short
    std::fprintf(stderr, "wrote %zu predictions to %s\n", predictions.size() - failed, o.csv.c_str());
  }
  if (failed) std::fprintf(stderr, "%d of %zu image(s) could not be read\n", failed, predictions.size());
  return failed == static_cast<int>(predictions.size()) ? 1 : 0;
}

}  // namespace

Command add_predict_command(CLI::App& root) {
  auto o = std::make_shared<PredictOptions>();
  CLI::App* app = root.add_subcommand("predict", "Class and probabilities for each image");
  add_checkpoint_flags(app, o->checkpoint, o->trust_checkpoint);
  app->add_option("--csv", o->csv, "Write path,class,probability,p_<class>...,error rows here");
  app->add_option("--threads", o->threads, "Intra-op threads (0: all cores)");
  app->add_option("--device", o->device, "cpu | cuda | cuda:N")->capture_default_str();
  app->add_option("--batch-size", o->batch_size, "Images per forward pass")->capture_default_str();
  app->add_option("--amp", o->amp, "none | bf16 | fp16 (default: as trained)");
  app->add_option("--calibration", o->calibration,
                  "temperature | none: the checkpoint's temperature divides the logits (default: when it has one)")
      ->check(CLI::IsMember({"temperature", "none"}));
  app->add_option("files", o->files, "Image files (JPEG, PNG, TIFF, BMP, WebP) or folders")->required();
  add_max_image_pixels_flag(app);
  return {app, [o] {
            if (o->batch_size < 1) throw UsageError("--batch-size must be at least 1");
            return run_predict(*o);
          }};
}

}  // namespace histotrain
