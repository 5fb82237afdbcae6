#include "core/slide_inference.h"

#include <tbb/global_control.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <future>
#include <thread>

#include "core/fast_inference.h"
#include "core/trained_model.h"
#include "data/resize.h"
#include "util/clock.h"
#include "util/display_text.h"
#include "util/progress.h"

namespace histotrain {

namespace {

// uint8 NHWC tiles [n, size, size, 3] of tiles [first, first + n), read and resized in parallel.
torch::Tensor read_batch(const SlideFile& slide, const TileGeometry& g, const std::vector<SlideTile>& tiles,
                         size_t first, size_t n, int size) {
  torch::Tensor batch = torch::empty({static_cast<int64_t>(n), size, size, 3}, torch::kUInt8);
  uint8_t* out = batch.data_ptr<uint8_t>();
  const size_t tile_bytes = static_cast<size_t>(size) * size * 3;
  tbb::parallel_for(size_t{0}, n, [&](size_t i) {
    RgbImage tile = read_tile(slide, g, tiles[first + i].x, tiles[first + i].y);
    if (tile.width != size) tile = resize_rgb(tile, size, size);
    std::copy(tile.pixels.begin(), tile.pixels.end(), out + i * tile_bytes);
  });
  return batch;
}

}  // namespace

int64_t SlidePrediction::predicted(size_t tile) const {
  const float* p = probabilities.data() + tile * static_cast<size_t>(classes);
  return std::max_element(p, p + classes) - p;
}

SlidePrediction predict_slide(TrainedModel& trained, const SlideFile& slide, const SlideInferenceOptions& o,
                              const torch::Device& device) {
  const auto start = Clock::now();
  SlidePrediction result;
  const int size = trained.image_size;
  result.geometry = tile_geometry(slide, o.tile_px > 0 ? o.tile_px : size, o.mpp);
  double downsample = 1;
  result.thumbnail = slide.thumbnail(thumbnail_side(slide, result.geometry.side0), downsample);
  result.tissue = detect_tissue(result.thumbnail, downsample);
  result.tissue_seconds = seconds_since(start);
  result.tiles = tissue_tiles(result.tissue, slide.width(), slide.height(), result.geometry.side0, o.min_tissue);
  result.classes = static_cast<int64_t>(trained.classes.size());
  result.probabilities.resize(result.tiles.size() * static_cast<size_t>(result.classes));
  const int workers = o.workers > 0 ? o.workers : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(workers));
  FastInference model(trained, device, o.frozen_model);
  result.model_path = model.path();
  const size_t batch = static_cast<size_t>(std::max(1, o.batch_size));
  Progress progress("slide " + printable(std::filesystem::path(slide.path()).filename().string()),
                    static_cast<int64_t>(result.tiles.size()), "tiles", o.quiet);
  torch::NoGradGuard no_grad;
  auto next = [&](size_t first) {
    const size_t n = std::min(batch, result.tiles.size() - first);
    return std::async(std::launch::async, [&, first, n] {
      torch::Tensor tiles = read_batch(slide, result.geometry, result.tiles, first, n, size).contiguous();
      normalize_tile_stains(trained, tiles.data_ptr<uint8_t>(), tiles.size(0));  // as the model's tiles were
      return tiles;
    });
  };
  std::future<torch::Tensor> pending;
  if (!result.tiles.empty()) pending = next(0);
  for (size_t first = 0; first < result.tiles.size(); first += batch) {
    const auto waited = Clock::now();
    const torch::Tensor images = pending.get();
    result.read_seconds += seconds_since(waited);
    if (first + batch < result.tiles.size()) pending = next(first + batch);  // read while the model runs
    const auto modelled = Clock::now();
    const torch::Tensor p = torch::softmax(model.logits(images) / o.temperature, 1).contiguous();
    std::copy(p.data_ptr<float>(), p.data_ptr<float>() + p.numel(),
              result.probabilities.begin() + static_cast<std::ptrdiff_t>(first * static_cast<size_t>(result.classes)));
    result.model_seconds += seconds_since(modelled);
    progress.update(static_cast<int64_t>(std::min(first + batch, result.tiles.size())));
  }
  progress.finish();
  result.seconds = seconds_since(start);
  return result;
}

}  // namespace histotrain
