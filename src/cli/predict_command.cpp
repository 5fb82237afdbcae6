// histotrain predict: class and probabilities for individual images.
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "cli/predict_explain.h"
#include "cli/predict_slides.h"
#include "core/checkpoint.h"
#include "core/runtime.h"
#include "data/batches.h"
#include "data/scan.h"
#include "data/tile_cache.h"
#include "util/csv.h"
#include "util/errors.h"
#include "util/display_text.h"
#include "util/files.h"
#include "util/machine.h"

namespace histotrain {

namespace {

struct PredictOptions {
  std::string checkpoint, csv, device = "cpu", amp, calibration, explain, explain_class;
  std::vector<std::string> files;
  int threads = 0, batch_size = 64;
  bool trust_checkpoint = false, logits = false;
};

struct Prediction {
  std::string path, error;
  std::vector<float> probabilities, logits;
};

// Files as given; folders expand to the images below them, sorted. An entry that cannot be read
// (a link loop, a folder without permission) becomes a row with its error: the others go on.
std::vector<Prediction> expand_inputs(const std::vector<std::string>& inputs) {
  std::vector<Prediction> files;
  for (const auto& input : inputs) {
    std::error_code ec;
    if (!std::filesystem::is_directory(input, ec)) {
      files.push_back({input, "", {}, {}});
      continue;
    }
    std::vector<Prediction> found;
    auto it = std::filesystem::recursive_directory_iterator(input, std::filesystem::directory_options::none, ec);
    for (; !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      std::error_code entry_error;
      const bool regular = it->is_regular_file(entry_error);
      if (entry_error)
        found.push_back({it->path().string(), "cannot be read: " + entry_error.message(), {}, {}});
      else if (regular && is_image_file(it->path().string()))
        found.push_back({it->path().string(), "", {}, {}});
    }
    if (ec) found.push_back({input, "cannot list the folder: " + ec.message(), {}, {}});
    std::sort(found.begin(), found.end(), [](const Prediction& a, const Prediction& b) { return a.path < b.path; });
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

// Fills each prediction's probabilities (`temperature` divides the logits; 1: the model's own)
// and logits; one that cannot be decoded keeps its error. An entry already in error is skipped.
void predict(TrainedModel& trained, std::vector<Prediction>& out, torch::Device device, int batch_size,
             double temperature) {
  const int size = trained.image_size;
  const auto format = trained.channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
  torch::NoGradGuard no_grad;
  const size_t tile_bytes = static_cast<size_t>(size) * size * 3;
  for (size_t first = 0; first < out.size(); first += static_cast<size_t>(batch_size)) {
    const size_t n = std::min(out.size() - first, static_cast<size_t>(batch_size));
    std::vector<uint8_t> pixels(n * tile_bytes);
    std::vector<int64_t> ok;
    for (size_t i = 0; i < n; ++i) {
      Prediction& p = out[first + i];
      if (p.error.empty() && decode_tile(p.path, size, pixels.data() + ok.size() * tile_bytes, &p.error))
        ok.push_back(static_cast<int64_t>(first + i));
    }
    if (ok.empty()) continue;
    normalize_tile_stains(trained, pixels.data(), static_cast<int64_t>(ok.size()));
    auto images = torch::from_blob(pixels.data(), {static_cast<int64_t>(ok.size()), size, size, 3}, torch::kUInt8);
    torch::Tensor logits;
    {
      AutocastScope autocast(trained.precision, device);
      logits = trained.model->forward(normalize_uint8_nhwc(images.to(device), format, trained.normalization));
    }
    logits = logits.to(torch::kFloat32).to(torch::kCPU).contiguous();
    const auto probs = torch::softmax(logits / temperature, 1).contiguous();
    for (size_t j = 0; j < ok.size(); ++j) {
      const auto row = probs[static_cast<int64_t>(j)], raw = logits[static_cast<int64_t>(j)];
      out[ok[j]].probabilities.assign(row.data_ptr<float>(), row.data_ptr<float>() + row.numel());
      out[ok[j]].logits.assign(raw.data_ptr<float>(), raw.data_ptr<float>() + raw.numel());
    }
  }
}

std::string csv_header(const std::vector<std::string>& classes, bool logits) {
  std::string csv = "path,class,probability";
  for (const auto& c : classes) csv += "," + csv_field("p_" + c);
  if (logits)
    for (const auto& c : classes) csv += "," + csv_field("logit_" + c);
  return csv + ",error\n";
}

std::string csv_row(const Prediction& p, const std::vector<std::string>& classes, bool logits) {
  const size_t columns = classes.size() * (logits ? 2 : 1);
  if (p.probabilities.empty()) return csv_field(p.path) + ",," + std::string(columns + 1, ',') + csv_field(p.error) + "\n";
  const size_t best = static_cast<size_t>(
      std::max_element(p.probabilities.begin(), p.probabilities.end()) - p.probabilities.begin());
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6f", p.probabilities[best]);
  std::string row = csv_field(p.path) + "," + csv_field(classes[best]) + "," + buf;
  for (float v : p.probabilities) {
    std::snprintf(buf, sizeof buf, ",%.6f", v);
    row += buf;
  }
  if (logits)
    for (float v : p.logits) {
      std::snprintf(buf, sizeof buf, ",%.9g", v);
      row += buf;
    }
  return row + ",\n";
}

void explain(TrainedModel& trained, const std::vector<Prediction>& predictions, const PredictOptions& o,
             torch::Device device, double temperature) {
  std::vector<std::string> readable;
  for (const auto& p : predictions)
    if (!p.probabilities.empty()) readable.push_back(p.path);
  const ExplainOptions options{o.explain, o.explain_class, o.batch_size, temperature};
  const int64_t written = write_explanations(trained, readable, options, device);
  std::fprintf(stderr, "wrote %lld Grad-CAM picture(s) to %s\n", static_cast<long long>(written),
               printable(o.explain).c_str());
}

int run_predict(const PredictOptions& o) {
  set_threads(o.threads);
  const torch::Device device = parse_device(o.device);
  TrainedModel trained = open_trained_model(o.checkpoint, device, o.amp, o.trust_checkpoint);
  const auto& classes = trained.classes;
  std::vector<Prediction> predictions = expand_inputs(o.files);
  if (predictions.empty()) throw UsageError("no images given");
  if (o.calibration == "temperature" && trained.temperature <= 0)
    throw Error("--calibration temperature: checkpoint '" + trained.run.string() + "' has no temperature");
  const bool calibrated = o.calibration != "none" && trained.temperature > 0;
  if (calibrated)
    std::fprintf(stderr, "probabilities at the checkpoint's temperature %.3f (fitted on its validation split; "
                 "--calibration none for the model's own)\n", trained.temperature);
  predict(trained, predictions, device, o.batch_size, calibrated ? trained.temperature : 1.0);
  if (!o.explain.empty()) explain(trained, predictions, o, device, calibrated ? trained.temperature : 1.0);

  std::string csv = csv_header(classes, o.logits);
  size_t failed = 0;
  for (const auto& p : predictions) {
    csv += csv_row(p, classes, o.logits);
    failed += p.probabilities.empty();
    if (!o.csv.empty()) continue;
    if (p.probabilities.empty()) {
      std::printf("%s\terror: %s\n", printable(p.path).c_str(), printable(p.error).c_str());
    } else {
      const auto best = std::max_element(p.probabilities.begin(), p.probabilities.end());
      std::printf("%s\t%s\t%.4f\n", printable(p.path).c_str(),
                  printable(classes[static_cast<size_t>(best - p.probabilities.begin())]).c_str(), *best);
    }
  }
  if (!o.csv.empty()) {
    write_file_atomically(o.csv, csv);  // a full disk is an error, never a CSV cut short
    std::fprintf(stderr, "wrote %zu rows to %s: %zu predictions, %zu unreadable image(s)%s\n", predictions.size(),
                 printable(o.csv).c_str(), predictions.size() - failed, failed,
                 failed ? " (their error column says why)" : "");
  } else if (failed) {
    std::fprintf(stderr, "%zu of %zu image(s) could not be read\n", failed, predictions.size());
  }
  return failed == predictions.size() ? 1 : 0;
}

}  // namespace

Command add_predict_command(CLI::App& root) {
  auto o = std::make_shared<PredictOptions>();
  CLI::App* app = root.add_subcommand("predict", "Class and probabilities for each image");
  add_checkpoint_flags(app, o->checkpoint, o->trust_checkpoint);
  app->add_option("--csv", o->csv, "Write path,class,probability,p_<class>...,error rows here");
  app->add_flag("--logits", o->logits, "Also write each class's logit (before any temperature) as logit_<class>");
  app->add_option("--threads", o->threads, "Intra-op threads (0: all cores)");
  app->add_option("--device", o->device, "cpu | cuda | cuda:N")->capture_default_str();
  app->add_option("--batch-size", o->batch_size, "Images per forward pass")->capture_default_str();
  app->add_option("--amp", o->amp, "none | bf16 | fp16 (default: as trained)");
  app->add_option("--calibration", o->calibration,
                  "temperature | none: the checkpoint's temperature divides the logits (default: when it has one)")
      ->check(CLI::IsMember({"temperature", "none"}));
  app->add_option("--explain", o->explain,
                  "Write a Grad-CAM picture of each tile here (DIR/<name>.gradcam.png): where the last residual stage "
                  "found the evidence for the class, with the class and its probability in the corner");
  app->add_option("--explain-class", o->explain_class, "--explain: show the evidence for this class (default: each "
                  "tile's predicted class); --slide: draw only this class's evidence_<class>.png");
  app->add_option("files", o->files, "Image files (JPEG, PNG, TIFF, BMP, WebP) or folders");
  auto slides = std::make_shared<SlidePredictOptions>();
  app->add_option("--slide", slides->slides,
                  "Whole slides (every format OpenSlide reads), or folders of them: each into a folder of --out "
                  "(tiles.csv, heatmaps, overlay, predictions.geojson, summary.json)");
  app->add_option("--out", slides->out, "--slide: the folder of the slides' results and slides.csv");
  app->add_option("--tile-size", slides->inference.tile_px,
                  "--slide: tile side in pixels at --mpp, before resizing to the model (default: its image size)");
  app->add_option("--mpp", slides->inference.mpp, "--slide: microns per tile pixel (default: the scale of the model's training tiles when their manifest gave one, else the slide's level 0)");
  app->add_option("--slide-mpp", slides->slide_mpp, "--slide: a slide's level-0 microns per pixel, where it says none");
  app->add_option("--min-tissue", slides->inference.min_tissue, "--slide: share of a tile that must be tissue")
      ->capture_default_str();
  app->add_option("--workers", slides->inference.workers, "--slide: tile reading threads (0: all cores)");
  app->add_option("--evidence-tiles", slides->evidence_tiles,
                  "--slide: per class, the tiles called it most confidently, with Grad-CAM over each, in "
                  "evidence_<class>.png (0: none; at most 64)")
      ->capture_default_str()
      ->check(CLI::Range(0, 64));
  app->add_flag("--quiet", slides->inference.quiet, "--slide: no progress within a slide (each slide's line stays)");
  add_max_image_pixels_flag(app);
  return {app, [o, slides] {
            if (o->batch_size < 1) throw UsageError("--batch-size must be at least 1");
            if (!slides->slides.empty() && !o->explain.empty())
              throw UsageError("--explain explains tile files; with --slide each slide's evidence_<class>.png shows "
                               "Grad-CAM over its most confident tiles (--evidence-tiles)");
            if (slides->slides.empty()) {
              if (o->files.empty()) throw UsageError("predict needs image files or folders, or --slide SLIDE...");
              return run_predict(*o);
            }
            if (!o->files.empty()) throw UsageError("predict takes image files or --slide slides, not both");
            slides->checkpoint = o->checkpoint;
            slides->device = o->device;
            slides->amp = o->amp;
            slides->calibration = o->calibration;
            slides->threads = o->threads;
            slides->trust_checkpoint = o->trust_checkpoint;
            slides->inference.batch_size = o->batch_size;
            slides->evidence_class = o->explain_class;
            check_thread_count(slides->inference.workers, "--workers");
            return predict_slides(*slides);
          }};
}

}  // namespace histotrain
