#include "leakage/tile_signature.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <thread>

#include <tbb/global_control.h>
#include <tbb/parallel_for.h>

#include "data/resize.h"
#include "data/tile_cache.h"
#include "util/errors.h"
#include "util/progress.h"

namespace histotrain {

namespace {

constexpr double kInnerRadius = 4.0 / 96, kOuterRadius = 44.0 / 96;  // fractions of the side
constexpr double kPi = 3.14159265358979323846;

// 3 x 3 box blur of one channel, edges clamped: bilinear sampling of a 96 px tile would
// otherwise alias the finest texture differently for every rotation.
std::vector<float> blurred_channel(const uint8_t* rgb, int size, int channel) {
  std::vector<float> out(static_cast<size_t>(size) * size);
  auto at = [&](int y, int x) {
    y = std::clamp(y, 0, size - 1);
    x = std::clamp(x, 0, size - 1);
    return static_cast<float>(rgb[(static_cast<size_t>(y) * size + x) * 3 + channel]);
  };
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x) {
      float sum = 0;
      for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx) sum += at(y + dy, x + dx);
      out[static_cast<size_t>(y) * size + x] = sum / 9;
    }
  return out;
}

// Samples `image` (size x size) on the log-polar grid: out[ring * angles + angle].
void sample_log_polar(const std::vector<float>& image, int size, float* out) {
  const double centre = (size - 1) / 2.0;
  const double r0 = kInnerRadius * size, ratio = kOuterRadius / kInnerRadius;
  for (int ring = 0; ring < kSignatureRings; ++ring) {
    const double r = r0 * std::pow(ratio, static_cast<double>(ring) / (kSignatureRings - 1));
    for (int a = 0; a < kSignatureAngles; ++a) {
      const double theta = 2 * kPi * a / kSignatureAngles;
      const double y = centre + r * std::sin(theta), x = centre + r * std::cos(theta);
      const int y0 = std::clamp(static_cast<int>(std::floor(y)), 0, size - 2);
      const int x0 = std::clamp(static_cast<int>(std::floor(x)), 0, size - 2);
      const double fy = y - y0, fx = x - x0;
      auto px = [&](int yy, int xx) { return image[static_cast<size_t>(yy) * size + xx]; };
      out[ring * kSignatureAngles + a] = static_cast<float>(
          px(y0, x0) * (1 - fy) * (1 - fx) + px(y0 + 1, x0) * fy * (1 - fx) + px(y0, x0 + 1) * (1 - fy) * fx +
          px(y0 + 1, x0 + 1) * fy * fx);
    }
  }
}

// |DFT| at angular frequency f of one ring: unchanged by rotation (a cyclic shift) and by a flip
// (a reversal).
double ring_magnitude(const float* ring, int f) {
  double re = 0, im = 0;
  for (int a = 0; a < kSignatureAngles; ++a) {
    const double phase = 2 * kPi * f * a / kSignatureAngles;
    re += ring[a] * std::cos(phase);
    im -= ring[a] * std::sin(phase);
  }
  return std::hypot(re, im) / kSignatureAngles;
}

// Per colour, ring band and frequency: the square root of the band's mean magnitude. Pooling
// rings into bands makes it tolerant of the zoom (a shift of a few rings).
void invariant_descriptor(const std::vector<std::vector<float>>& colour_rings, float* descriptor) {
  constexpr int rings_per_band = kSignatureRings / kDescriptorRingBands;
  int d = 0;
  for (int band = 0; band < kDescriptorRingBands; ++band)
    for (int f = 0; f < kDescriptorFrequencies; ++f)
      for (const auto& rings : colour_rings) {
        double sum = 0;
        for (int k = 0; k < rings_per_band; ++k)
          sum += ring_magnitude(rings.data() + (band * rings_per_band + k) * kSignatureAngles, f);
        descriptor[d++] = static_cast<float>(std::sqrt(sum / rings_per_band));
      }
}

// Grey rings for matching: each ring's mean removed (brightness and stain strength differ between
// copies less than between sources, but the layout is what identifies a source), then the whole
// signature scaled to unit variance so match scores are correlations.
void normalise_grey(const std::vector<std::vector<float>>& colour_rings, float* rings) {
  constexpr int n = kSignatureRings * kSignatureAngles;
  for (int i = 0; i < n; ++i) rings[i] = (colour_rings[0][i] + colour_rings[1][i] + colour_rings[2][i]) / 3;
  double sum_sq = 0;
  for (int ring = 0; ring < kSignatureRings; ++ring) {
    float* r = rings + ring * kSignatureAngles;
    double mean = 0;
    for (int a = 0; a < kSignatureAngles; ++a) mean += r[a];
    mean /= kSignatureAngles;
    for (int a = 0; a < kSignatureAngles; ++a) {
      r[a] = static_cast<float>(r[a] - mean);
      sum_sq += static_cast<double>(r[a]) * r[a];
    }
  }
  const double scale = 1.0 / (std::sqrt(sum_sq / n) + 1e-6);
  for (int i = 0; i < n; ++i) rings[i] = static_cast<float>(rings[i] * scale);
}

TileSignatures empty_signatures(int64_t count) {
  TileSignatures s;
  s.rings = torch::zeros({count, kSignatureRings, kSignatureAngles});
  s.descriptor = torch::zeros({count, kDescriptorSize});
  s.ok.assign(static_cast<size_t>(count), false);
  return s;
}

}  // namespace

void tile_signature(const uint8_t* rgb, int size, float* rings, float* descriptor) {
  if (size < 16) throw Error("tile signatures need tiles of at least 16 px, got " + std::to_string(size));
  std::vector<std::vector<float>> colour_rings(3, std::vector<float>(kSignatureRings * kSignatureAngles));
  for (int c = 0; c < 3; ++c) sample_log_polar(blurred_channel(rgb, size, c), size, colour_rings[c].data());
  invariant_descriptor(colour_rings, descriptor);
  normalise_grey(colour_rings, rings);
}

TileSignatures compute_signatures(const std::vector<std::string>& paths, int threads, bool quiet) {
  const auto count = static_cast<int64_t>(paths.size());
  TileSignatures s = empty_signatures(count);
  float* rings = s.rings.data_ptr<float>();
  float* descriptors = s.descriptor.data_ptr<float>();
  constexpr size_t tile_bytes = size_t{kSignatureTileSize} * kSignatureTileSize * 3;
  constexpr int64_t ring_floats = kSignatureRings * kSignatureAngles;

  if (threads <= 0) threads = static_cast<int>(std::thread::hardware_concurrency());
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, std::max(1, threads));
  Progress progress("signatures of " + std::to_string(count) + " images", count, "img", quiet);
  std::atomic<int64_t> done{0};
  std::mutex errors_mutex;
  // std::vector<bool> packs bits: written from many threads, so collect flags as bytes first.
  std::vector<uint8_t> ok(static_cast<size_t>(count), 0);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, count, 16), [&](const tbb::blocked_range<int64_t>& range) {
    std::vector<uint8_t> tile(tile_bytes);
    for (int64_t i = range.begin(); i < range.end(); ++i) {
      std::string error;
      if (!decode_tile(paths[i], kSignatureTileSize, tile.data(), &error)) {
        std::lock_guard<std::mutex> lock(errors_mutex);
        s.errors.push_back(paths[i] + ": " + error);
        continue;
      }
      tile_signature(tile.data(), kSignatureTileSize, rings + i * ring_floats, descriptors + i * kDescriptorSize);
      ok[i] = 1;
    }
    progress.update(done += static_cast<int64_t>(range.size()));
  });
  progress.finish();
  for (int64_t i = 0; i < count; ++i) s.ok[i] = ok[i] != 0;
  std::sort(s.errors.begin(), s.errors.end());
  return s;
}

TileSignatures signatures_of_cache(const TileCache& cache, int threads, bool quiet) {
  const int64_t count = cache.count();
  TileSignatures s = empty_signatures(count);
  float* rings = s.rings.data_ptr<float>();
  float* descriptors = s.descriptor.data_ptr<float>();
  constexpr int64_t ring_floats = kSignatureRings * kSignatureAngles;
  if (threads <= 0) threads = static_cast<int>(std::thread::hardware_concurrency());
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, std::max(1, threads));
  Progress progress("signatures of " + std::to_string(count) + " tiles", count, "img", quiet);
  std::atomic<int64_t> done{0};
  std::vector<uint8_t> ok(static_cast<size_t>(count), 0);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, count, 16), [&](const tbb::blocked_range<int64_t>& range) {
    RgbImage tile(cache.size(), cache.size());
    for (int64_t i = range.begin(); i < range.end(); ++i) {
      if (!cache.decoded(i)) continue;
      std::copy(cache.tile(i), cache.tile(i) + cache.tile_bytes(), tile.pixels.begin());
      const RgbImage small = resize_rgb(tile, kSignatureTileSize, kSignatureTileSize);
      tile_signature(small.pixels.data(), kSignatureTileSize, rings + i * ring_floats, descriptors + i * kDescriptorSize);
      ok[i] = 1;
    }
    progress.update(done += static_cast<int64_t>(range.size()));
  });
  progress.finish();
  for (int64_t i = 0; i < count; ++i) s.ok[i] = ok[i] != 0;
  return s;
}

TileSignatures signatures_of_tiles(const torch::Tensor& tiles) {
  if (tiles.dim() != 4 || tiles.size(1) != tiles.size(2) || tiles.size(3) != 3 || tiles.scalar_type() != torch::kUInt8)
    throw Error("signatures_of_tiles expects uint8 [N, size, size, 3]");
  const torch::Tensor contiguous = tiles.contiguous();
  const int64_t count = tiles.size(0);
  const int size = static_cast<int>(tiles.size(1));
  TileSignatures s = empty_signatures(count);
  const size_t tile_bytes = static_cast<size_t>(size) * size * 3;
  for (int64_t i = 0; i < count; ++i) {
    tile_signature(contiguous.data_ptr<uint8_t>() + i * tile_bytes, size,
                   s.rings.data_ptr<float>() + i * kSignatureRings * kSignatureAngles,
                   s.descriptor.data_ptr<float>() + i * kDescriptorSize);
    s.ok[i] = true;
  }
  return s;
}

TileSignatures select_rows(const TileSignatures& signatures, const std::vector<int64_t>& rows) {
  const torch::Tensor index =
      torch::from_blob(const_cast<int64_t*>(rows.data()), {static_cast<int64_t>(rows.size())}, torch::kLong).clone();
  TileSignatures s;
  s.rings = signatures.rings.index_select(0, index);
  s.descriptor = signatures.descriptor.index_select(0, index);
  for (int64_t row : rows) s.ok.push_back(signatures.ok[row]);
  return s;
}

}  // namespace histotrain
