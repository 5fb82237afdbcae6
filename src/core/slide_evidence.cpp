#include "core/slide_evidence.h"

#include <algorithm>
#include <cstdlib>
#include <cstdio>

#include "core/grad_cam.h"
#include "data/png_encode.h"
#include "data/resize.h"
#include "slide/tile_grid.h"
#include "util/bitmap_text.h"
#include "util/display_text.h"
#include "util/files.h"

namespace histotrain {

namespace {

namespace fs = std::filesystem;

// The side each tile is drawn at: the model's, but never under 256 px, as predict --explain draws.
int cell_side(const TrainedModel& trained) { return std::max(trained.image_size, 256); }

// Model inputs [n, 3, S, S] of `tiles`, read at the model's size and stain as slide prediction reads them.
torch::Tensor model_inputs(const TrainedModel& trained, const std::vector<RgbImage>& tiles, const torch::Device& device) {
  const int size = trained.image_size;
  const auto n = static_cast<int64_t>(tiles.size());
  torch::Tensor batch = torch::empty({n, size, size, 3}, torch::kUInt8);
  uint8_t* out = batch.data_ptr<uint8_t>();
  for (const RgbImage& tile : tiles) {
    const RgbImage sized = tile.width == size && tile.height == size ? tile : resize_rgb(tile, size, size);
    out = std::copy(sized.pixels.begin(), sized.pixels.end(), out);
  }
  normalize_tile_stains(trained, batch.data_ptr<uint8_t>(), n);
  const auto format = trained.channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
  return normalize_uint8_nhwc(batch.to(device), format, trained.normalization);
}

std::string cell_label(double probability, const SlideTile& tile) {
  char label[96];
  std::snprintf(label, sizeof label, " %.3f  x %lld y %lld", probability, static_cast<long long>(tile.x),
                static_cast<long long>(tile.y));
  return label;
}

// One class's picture; returns its summary entry.
nlohmann::json write_class_evidence(TrainedModel& trained, const SlideFile& slide, const SlidePrediction& p,
                                    int64_t k, const std::vector<size_t>& chosen, const torch::Device& device,
                                    const fs::path& folder) {
  std::vector<RgbImage> tiles;
  for (size_t t : chosen) tiles.push_back(read_tile(slide, p.geometry, p.tiles[t].x, p.tiles[t].y));
  const GradCamBatch cam = grad_cam(trained.model, model_inputs(trained, tiles, device), k);
  const int side = cell_side(trained);
  std::vector<RgbImage> cells;
  nlohmann::json listed = nlohmann::json::array();
  for (size_t i = 0; i < chosen.size(); ++i) {
    const SlideTile& tile = p.tiles[chosen[i]];
    const double probability = p.probabilities[chosen[i] * static_cast<size_t>(p.classes) + static_cast<size_t>(k)];
    cells.push_back(grad_cam_picture(resize_rgb(tiles[i], side, side), cam.maps[static_cast<int64_t>(i)],
                                     cell_label(probability, tile)));
    listed.push_back({{"x", tile.x}, {"y", tile.y}, {"probability", probability}});
  }
  const std::string& name = trained.classes[static_cast<size_t>(k)];
  const std::string shown = printable(name).substr(0, 40);
  const std::string title = shown + ": most confident tiles in separate places - green: grad-cam evidence";
  const std::string file = "evidence_" + safe_name(name) + ".png";  // as heatmap_<class>.png is named
  write_file_atomically(folder / file, encode_png(gallery(cells, side, 4, title)));
  return {{"picture", file}, {"tiles", listed}};
}

}  // namespace

std::vector<size_t> most_confident_tiles(const SlidePrediction& p, int64_t class_index, int count) {
  const auto K = static_cast<size_t>(p.classes);
  const auto probability = [&](size_t t) { return p.probabilities[t * K + static_cast<size_t>(class_index)]; };
  std::vector<size_t> called;
  for (size_t t = 0; t < p.tiles.size(); ++t)
    if (p.predicted(t) == class_index) called.push_back(t);
  std::stable_sort(called.begin(), called.end(), [&](size_t a, size_t b) { return probability(a) > probability(b); });
  const auto wanted = std::min(called.size(), static_cast<size_t>(std::max(0, count)));
  const auto touches = [&](size_t a, size_t b) {
    return std::abs(p.tiles[a].x - p.tiles[b].x) <= p.geometry.side0 && std::abs(p.tiles[a].y - p.tiles[b].y) <= p.geometry.side0;
  };
  std::vector<size_t> chosen, neighbours;
  for (size_t t : called) {
    if (chosen.size() == wanted) break;
    const bool near = std::any_of(chosen.begin(), chosen.end(), [&](size_t c) { return touches(t, c); });
    (near ? neighbours : chosen).push_back(t);
  }
  for (size_t i = 0; chosen.size() < wanted; ++i) chosen.push_back(neighbours[i]);  // too few apart: the nearest best
  std::stable_sort(chosen.begin(), chosen.end(), [&](size_t a, size_t b) { return probability(a) > probability(b); });
  return chosen;
}

RgbImage gallery(const std::vector<RgbImage>& cells, int side, int columns, const std::string& title) {
  constexpr int kGap = 6, kTitleScale = 2;
  const int shown = std::max(1, std::min(columns, static_cast<int>(cells.size())));
  const int rows = (static_cast<int>(cells.size()) + shown - 1) / shown;
  const int top = label_height(kTitleScale) + 2 * kGap;
  const int width = std::max(shown * (side + kGap) + kGap, label_width(title, kTitleScale) + 2 * kGap);
  RgbImage picture(width, top + rows * (side + kGap));
  std::fill(picture.pixels.begin(), picture.pixels.end(), 255);
  draw_label(picture.pixels.data(), picture.width, picture.height, kGap, kGap, title, kTitleScale);
  for (size_t i = 0; i < cells.size(); ++i) {
    const int x0 = kGap + static_cast<int>(i % shown) * (side + kGap), y0 = top + static_cast<int>(i / shown) * (side + kGap);
    for (int y = 0; y < side && y < cells[i].height; ++y)
      std::copy_n(cells[i].row(y), static_cast<size_t>(std::min(side, cells[i].width)) * 3,
                  picture.row(y0 + y) + static_cast<size_t>(x0) * 3);
  }
  return picture;
}

nlohmann::json write_slide_evidence(TrainedModel& trained, const SlideFile& slide, const SlidePrediction& p,
                                    const EvidenceOptions& o, const torch::Device& device, const fs::path& folder) {
  nlohmann::json evidence = nlohmann::json::object();
  if (o.tiles <= 0) return evidence;
  for (int64_t k = 0; k < p.classes; ++k) {
    if (o.only_class >= 0 && k != o.only_class) continue;
    const std::vector<size_t> chosen = most_confident_tiles(p, k, o.tiles);
    if (!chosen.empty()) evidence[trained.classes[static_cast<size_t>(k)]] = write_class_evidence(trained, slide, p, k, chosen, device, folder);
  }
  return evidence;
}

}  // namespace histotrain
