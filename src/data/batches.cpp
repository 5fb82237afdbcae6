#include "data/batches.h"

namespace histotrain {

namespace {

const float kMean[3] = {0.485f, 0.456f, 0.406f};
const float kStd[3] = {0.229f, 0.224f, 0.225f};

// Applies one of the 8 symmetries of the square to a [3, H, W] image.
torch::Tensor apply_dihedral(torch::Tensor image, int which) {
  if (which & 1) image = image.flip({2});
  if (which & 2) image = image.flip({1});
  if (which & 4) image = image.transpose(1, 2);
  return image;
}

}  // namespace

std::vector<int64_t> epoch_order(const std::vector<int64_t>& items, uint64_t seed, int64_t epoch, bool shuffle,
                                 int rank, int world) {
  std::vector<int64_t> order = items;
  if (shuffle) {
    std::mt19937_64 rng(seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(epoch) * 0x632be59bd9b4e019ull + 1);
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
  }
  const size_t per_rank = order.size() / static_cast<size_t>(world);
  std::vector<int64_t> shard;
  shard.reserve(per_rank);
  for (size_t i = 0; i < per_rank; ++i) shard.push_back(order[i * world + rank]);
  return shard;
}

torch::Tensor normalize_uint8_nhwc(const torch::Tensor& nhwc_uint8, torch::MemoryFormat format) {
  auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(nhwc_uint8.device());
  const auto mean = torch::tensor({kMean[0] * 255, kMean[1] * 255, kMean[2] * 255}, opts).view({1, 3, 1, 1});
  const auto inv_std = torch::tensor({1 / (kStd[0] * 255), 1 / (kStd[1] * 255), 1 / (kStd[2] * 255)}, opts).view({1, 3, 1, 1});
  // The permuted view of NHWC data already has channels-last strides: no copy for that format.
  return (nhwc_uint8.permute({0, 3, 1, 2}).to(torch::kFloat32) - mean).mul_(inv_std).contiguous(format);
}

BatchMaker::BatchMaker(const TileDataset& data, torch::Device device, torch::MemoryFormat format)
    : data_(data), device_(device), format_(format), tiles_(data.tiles()) {}

Batch BatchMaker::make_labels(const int64_t* items, int64_t count) const {
  auto labels = torch::empty({count}, torch::kLong);
  for (int64_t i = 0; i < count; ++i) labels[i] = data_.labels[items[i]];
  return {torch::Tensor(), labels.to(device_)};
}

Batch BatchMaker::make(const int64_t* items, int64_t count, const Augmentation* augment, std::mt19937_64* rng) const {
  auto rows = torch::empty({count}, torch::kLong);
  auto labels = torch::empty({count}, torch::kLong);
  auto* r = rows.data_ptr<int64_t>();
  auto* l = labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < count; ++i) {
    r[i] = data_.rows[items[i]];
    l[i] = data_.labels[items[i]];
  }
  // Gather and move as uint8 (4x less to copy than float), convert on the device.
  auto images = normalize_uint8_nhwc(tiles_.index_select(0, rows).to(device_), format_);
  if (augment && rng) {
    const int64_t size = images.size(2);
    const int shift = augment->max_shift;
    auto padded = shift > 0 ? torch::reflection_pad2d(images, {shift, shift, shift, shift}) : images;
    std::vector<torch::Tensor> out;
    out.reserve(count);
    for (int64_t i = 0; i < count; ++i) {
      auto image = padded[i];
      if (shift > 0) {
        const int64_t dy = static_cast<int64_t>((*rng)() % (2 * shift + 1));
        const int64_t dx = static_cast<int64_t>((*rng)() % (2 * shift + 1));
        image = image.narrow(1, dy, size).narrow(2, dx, size);
      }
      if (augment->dihedral) image = apply_dihedral(image, static_cast<int>((*rng)() % 8));
      out.push_back(image);
    }
    images = torch::stack(out).contiguous(format_);
  }
  return {images, labels.to(device_)};
}

}  // namespace histotrain
