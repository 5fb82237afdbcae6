#include "cli/predict_explain.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>

#include "core/grad_cam.h"
#include "data/png_encode.h"
#include "data/tile_cache.h"
#include "util/display_text.h"
#include "util/errors.h"
#include "util/files.h"

namespace histotrain {

namespace {

namespace fs = std::filesystem;

// The side pictures are drawn at: the model's, but never under 256 px, so that a 64-px model's
// evidence is still shown over a tile a person can read.
int picture_side(const TrainedModel& trained) { return std::max(trained.image_size, 256); }

// DIR/<stem>.gradcam.png, numbered when two inputs share a stem.
std::string picture_name(const std::string& path, std::set<std::string>& taken) {
  const std::string stem = fs::path(path).stem().string();
  std::string name = stem + ".gradcam.png";
  for (int n = 2; !taken.insert(name).second; ++n) name = stem + "-" + std::to_string(n) + ".gradcam.png";
  return name;
}

}  // namespace

int64_t explained_class(const TrainedModel& trained, const std::string& name) {
  if (name.empty()) return -1;
  const auto found = std::find(trained.classes.begin(), trained.classes.end(), name);
  if (found == trained.classes.end()) throw UsageError("--explain-class " + printable(name) + " is not a class of the model");
  return found - trained.classes.begin();
}

int64_t write_explanations(TrainedModel& trained, const std::vector<std::string>& paths, const ExplainOptions& o,
                           torch::Device device) {
  const int64_t target = explained_class(trained, o.target_class);
  ensure_writable_dir(o.dir);
  const int size = trained.image_size, side = picture_side(trained);
  const auto format = trained.channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
  const size_t tile_bytes = static_cast<size_t>(size) * size * 3;
  std::set<std::string> taken;
  int64_t written = 0;
  for (size_t first = 0; first < paths.size(); first += static_cast<size_t>(o.batch_size)) {
    const size_t n = std::min(paths.size() - first, static_cast<size_t>(o.batch_size));
    std::vector<uint8_t> pixels(n * tile_bytes);
    std::vector<size_t> ok;
    for (size_t i = 0; i < n; ++i)
      if (decode_tile(paths[first + i], size, pixels.data() + ok.size() * tile_bytes, nullptr)) ok.push_back(first + i);
    if (ok.empty()) continue;
    const auto count = static_cast<int64_t>(ok.size());
    normalize_tile_stains(trained, pixels.data(), count);
    const torch::Tensor images = torch::from_blob(pixels.data(), {count, size, size, 3}, torch::kUInt8);
    const GradCamBatch cam = grad_cam(trained.model, normalize_uint8_nhwc(images.to(device), format, trained.normalization), target);
    const torch::Tensor shown = torch::softmax(torch::log(cam.probabilities.clamp_min(1e-30)) / o.temperature, 1);
    for (int64_t j = 0; j < count; ++j) {
      RgbImage tile(side, side);  // as the file shows it, before any stain normalisation
      if (!decode_tile(paths[ok[j]], side, tile.pixels.data(), nullptr)) continue;
      const int64_t k = cam.classes[j].item<int64_t>();
      char label[64];
      std::snprintf(label, sizeof label, " %.2f", shown[j][k].item<float>());
      const RgbImage picture = grad_cam_picture(tile, cam.maps[j], printable(trained.classes[k]).substr(0, 40) + label);
      write_file_atomically(fs::path(o.dir) / picture_name(paths[ok[j]], taken), encode_png(picture));
      ++written;
    }
  }
  return written;
}

}  // namespace histotrain
