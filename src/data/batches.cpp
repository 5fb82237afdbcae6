#include "data/batches.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "data/stain.h"

namespace histotrain {

namespace {

// Reflects coordinates that a shift moved off the tile back inside it (as reflection padding does).
torch::Tensor reflect_inside(torch::Tensor coordinate, int64_t size) {
  coordinate = coordinate.abs();
  return torch::where(coordinate >= size, 2 * (size - 1) - coordinate, coordinate);
}

// Column view of a per-image value, to broadcast against [B, H, W] pixel grids.
torch::Tensor per_image(const torch::Tensor& values) { return values.view({-1, 1, 1}); }

}  // namespace

std::vector<int64_t> epoch_order(const std::vector<int64_t>& items, uint64_t seed, int64_t epoch, bool shuffle,
                                 int rank, int world) {
  std::vector<int64_t> order = items;
  if (shuffle) {
    std::mt19937_64 rng(seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(epoch) * 0x632be59bd9b4e019ull + 1);
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
  }
  return rank_shard(order, rank, world);
}

std::vector<int64_t> rank_shard(const std::vector<int64_t>& order, int rank, int world) {
  const size_t per_rank = order.size() / static_cast<size_t>(world);
  std::vector<int64_t> shard;
  shard.reserve(per_rank);
  for (size_t i = 0; i < per_rank; ++i) shard.push_back(order[i * world + rank]);
  return shard;
}

Normalization measure_normalization(const TileDataset& data, const std::vector<int64_t>& items) {
  const torch::Tensor tiles = data.tiles();
  std::vector<int64_t> rows;
  for (int64_t item : items) rows.push_back(data.rows[static_cast<size_t>(item)]);
  // Sums per chunk of about 4 M pixels in float, added up in double: exact enough, little memory.
  const int64_t pixels_per_tile = tiles.numel() / std::max<int64_t>(tiles.size(0), 1) / 3;
  const int64_t chunk = std::max<int64_t>(1, (int64_t{4} << 20) / std::max<int64_t>(pixels_per_tile, 1));
  double sum[3] = {0, 0, 0}, squares[3] = {0, 0, 0};
  for (size_t first = 0; first < rows.size(); first += static_cast<size_t>(chunk)) {
    const size_t end = std::min(rows.size(), first + static_cast<size_t>(chunk));
    const auto index = torch::tensor(std::vector<int64_t>(rows.begin() + first, rows.begin() + end));
    const auto values = tiles.index_select(0, index).view({-1, 3}).to(torch::kFloat64).div_(255);
    const auto s = values.sum(0), q = values.square().sum(0);
    for (int c = 0; c < 3; ++c) {
      sum[c] += s[c].item<double>();
      squares[c] += q[c].item<double>();
    }
  }
  Normalization n;
  const double count = static_cast<double>(rows.size()) * static_cast<double>(pixels_per_tile);
  if (count == 0) return n;
  for (int c = 0; c < 3; ++c) {
    const double mean = sum[c] / count;
    n.mean[c] = static_cast<float>(mean);
    // A channel that never varies would divide by zero: keep its deviation from vanishing.
    n.std[c] = static_cast<float>(std::max(std::sqrt(std::max(squares[c] / count - mean * mean, 0.0)), 1e-3));
  }
  return n;
}

torch::Tensor normalize_uint8_nhwc(const torch::Tensor& nhwc_uint8, torch::MemoryFormat format,
                                   const Normalization& n) {
  auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(nhwc_uint8.device());
  const auto mean = torch::tensor({n.mean[0] * 255, n.mean[1] * 255, n.mean[2] * 255}, opts).view({1, 3, 1, 1});
  const auto inv_std =
      torch::tensor({1 / (n.std[0] * 255), 1 / (n.std[1] * 255), 1 / (n.std[2] * 255)}, opts).view({1, 3, 1, 1});
  // The permuted view of NHWC data already has channels-last strides: no copy for that format.
  return (nhwc_uint8.permute({0, 3, 1, 2}).to(torch::kFloat32) - mean).mul_(inv_std).contiguous(format);
}

// On a GPU the whole tile cache is uploaded once, as uint8: batches are then gathered on the device.
BatchMaker::BatchMaker(const TileDataset& data, torch::Device device, torch::MemoryFormat format,
                       Normalization normalization)
    : data_(data),
      device_(device),
      format_(format),
      normalization_(normalization),
      tiles_(data.tiles().to(device)) {}

Batch BatchMaker::make_labels(const int64_t* items, int64_t count) const {
  auto labels = torch::empty({count}, torch::kLong);
  for (int64_t i = 0; i < count; ++i) labels[i] = data_.labels[items[i]];
  return {torch::Tensor(), labels.to(device_), {}};
}

torch::Tensor source_pixel_index(const torch::Tensor& rows, const torch::Tensor& symmetry, const torch::Tensor& dy,
                                 const torch::Tensor& dx, int64_t size) {
  const auto grid = torch::arange(size, rows.options());
  const auto y = grid.view({1, size, 1}), x = grid.view({1, size}).unsqueeze(0);
  // The output is transpose?(flip_y?(flip_x?(shifted tile))): undo those steps from the output's side.
  const auto transpose = per_image((symmetry & 4) != 0);
  const auto a = torch::where(transpose, x, y), b = torch::where(transpose, y, x);
  const auto sy = torch::where(per_image((symmetry & 2) != 0), size - 1 - a, a) + per_image(dy);
  const auto sx = torch::where(per_image((symmetry & 1) != 0), size - 1 - b, b) + per_image(dx);
  return (per_image(rows) * size + reflect_inside(sy, size)) * size + reflect_inside(sx, size);
}

Batch BatchMaker::make(const int64_t* items, int64_t count, const Augmentation* augment, std::mt19937_64* rng) const {
  // One small host table per batch, [row, label, symmetry, dy, dx] per image, copied to the device
  // in one transfer (asynchronously from pinned memory on a GPU); the rest happens on the device.
  const bool augmenting = augment && rng;
  auto table = torch::zeros({count, 5}, torch::TensorOptions().dtype(torch::kLong).pinned_memory(device_.is_cuda()));
  auto* t = table.data_ptr<int64_t>();
  const int shift = augmenting ? augment->max_shift : 0;
  for (int64_t i = 0; i < count; ++i, t += 5) {
    t[0] = data_.rows[items[i]];
    t[1] = data_.labels[items[i]];
    if (!augmenting) continue;
    if (augment->dihedral) t[2] = static_cast<int64_t>((*rng)() % 8);
    if (shift > 0) {
      t[3] = static_cast<int64_t>((*rng)() % (2 * shift + 1)) - shift;
      t[4] = static_cast<int64_t>((*rng)() % (2 * shift + 1)) - shift;
    }
  }
  table = table.to(device_, /*non_blocking=*/true);
  const torch::Tensor rows = table.select(1, 0), labels = table.select(1, 1);
  // Gather as uint8 (4x less memory traffic than float), convert afterwards.
  torch::Tensor pixels;
  if (!augmenting) {
    pixels = tiles_.index_select(0, rows);
  } else {
    const int64_t size = tiles_.size(1);
    // 32-bit index arithmetic where the cache's pixels allow: half the memory traffic.
    const auto type = tiles_.numel() / 3 < std::numeric_limits<int32_t>::max() ? torch::kInt : torch::kLong;
    const auto column = [&](int64_t c) { return table.select(1, c).to(type); };
    const auto index = source_pixel_index(column(0), column(2), column(3), column(4), size);
    pixels = tiles_.view({-1, 3}).index_select(0, index.flatten()).view({count, size, size, 3});
  }
  if (augmenting && augment->hed_sigma > 0) pixels = jitter_stains(pixels, augment->hed_sigma, *rng);
  torch::Tensor images = normalize_uint8_nhwc(pixels, format_, normalization_);
  if (augmenting && augment->color_jitter > 0) images = jitter_colors(images, augment->color_jitter, *rng);
  Batch batch{images, labels, torch::Tensor()};
  if (augmenting && augment->mixing())
    batch.targets = mix_batch(batch.images, labels, static_cast<int64_t>(data_.classes.size()), *augment, *rng);
  return batch;
}

torch::Tensor BatchMaker::jitter_colors(const torch::Tensor& images, double strength, std::mt19937_64& rng) const {
  const int64_t count = images.size(0);
  auto table = torch::empty({2, count, 3, 1, 1}, torch::TensorOptions().pinned_memory(device_.is_cuda()));
  std::uniform_real_distribution<float> u(static_cast<float>(-strength), static_cast<float>(strength));
  float* t = table.data_ptr<float>();
  for (int64_t i = 0; i < 2 * count * 3; ++i) t[i] = u(rng);
  table = table.to(device_, /*non_blocking=*/true);
  return (images * (table[0] + 1) + table[1]).contiguous(format_);
}

// Optical densities, one affine map per image (od a + b, data/stain.h), and back to light: the
// same arithmetic as apply_density_map, batched on the device and left unrounded.
torch::Tensor jitter_stains(const torch::Tensor& pixels, double sigma, std::mt19937_64& rng) {
  const int64_t count = pixels.size(0);
  auto table = torch::empty({count, 4, 3}, torch::TensorOptions().pinned_memory(pixels.is_cuda()));
  float* t = table.data_ptr<float>();
  for (int64_t i = 0; i < count; ++i) {
    const DensityMap map = hed_density_map(draw_hed_jitter(sigma, rng));
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 3; ++c) *t++ = static_cast<float>(map.a[r][c]);
    for (int c = 0; c < 3; ++c) *t++ = static_cast<float>(map.b[c]);
  }
  table = table.to(pixels.device(), /*non_blocking=*/true);
  const auto density = pixels.to(torch::kFloat32).add_(1).div_(256).log_().neg_().view({count, -1, 3});
  const auto moved = torch::baddbmm(table.narrow(1, 3, 1), density, table.narrow(1, 0, 3));
  return moved.neg_().exp_().mul_(256).sub_(1).clamp_(0, 255).view(pixels.sizes());
}

namespace {

// A draw from Beta(a, a), as the ratio of two Gamma(a) draws.
double beta_draw(double a, std::mt19937_64& rng) {
  std::gamma_distribution<double> gamma(a, 1.0);
  const double x = gamma(rng), y = gamma(rng);
  return x + y > 0 ? x / (x + y) : 0.5;
}

// CutMix's box: a (1 - lambda) share of the tile's area at a uniform centre, clipped at the
// border; returns the share of the tile it really covers.
double paste_box(torch::Tensor& images, double lambda, std::mt19937_64& rng) {
  const int64_t h = images.size(2), w = images.size(3);
  const double cut = std::sqrt(1 - lambda);
  const auto box_h = static_cast<int64_t>(h * cut), box_w = static_cast<int64_t>(w * cut);
  std::uniform_int_distribution<int64_t> cy(0, h - 1), cx(0, w - 1);
  const int64_t y = cy(rng), x = cx(rng);
  const int64_t y0 = std::max<int64_t>(0, y - box_h / 2), y1 = std::min<int64_t>(h, y + box_h / 2);
  const int64_t x0 = std::max<int64_t>(0, x - box_w / 2), x1 = std::min<int64_t>(w, x + box_w / 2);
  if (y1 > y0 && x1 > x0) {
    const torch::Tensor box = images.slice(2, y0, y1).slice(3, x0, x1);
    box.copy_(box.flip({0}));
  }
  return static_cast<double>((y1 - y0) * (x1 - x0)) / static_cast<double>(h * w);
}

torch::Tensor smoothed_one_hot(const torch::Tensor& labels, int64_t classes, double smoothing) {
  const double off = smoothing / static_cast<double>(classes);
  return torch::full({labels.size(0), classes}, off, torch::TensorOptions().device(labels.device()))
      .scatter_(1, labels.view({-1, 1}), 1 - smoothing + off);
}

}  // namespace

torch::Tensor mix_batch(torch::Tensor& images, const torch::Tensor& labels, int64_t classes, const Augmentation& a,
                        std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0, 1);
  double lambda = 1;
  if (u(rng) < a.mix_prob) {
    const bool cutmix = a.cutmix_alpha > 0 && (a.mixup_alpha <= 0 || u(rng) < 0.5);
    lambda = beta_draw(cutmix ? a.cutmix_alpha : a.mixup_alpha, rng);
    if (cutmix) {
      lambda = 1 - paste_box(images, lambda, rng);
    } else {
      const torch::Tensor reversed = images.flip({0});  // a copy, taken before images change
      images.mul_(lambda).add_(reversed, 1 - lambda);
    }
  }
  const torch::Tensor own = smoothed_one_hot(labels, classes, a.target_smoothing);
  return own.mul(lambda).add_(own.flip({0}), 1 - lambda);
}

}  // namespace histotrain
