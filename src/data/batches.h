// From cached uint8 tiles to model input: sampling order, augmentation and normalisation, done on
// whole batches (on the training device) rather than image by image.
#pragma once
#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <random>
#include <vector>

#include "data/dataset.h"

namespace histotrain {

struct Batch {
  torch::Tensor images;   // float [B, 3, H, W], normalised
  torch::Tensor labels;   // int64 [B]
  torch::Tensor targets;  // float [B, classes], rows summing to 1: with mixup or cutmix; else undefined

  // Images [start, start + count) with their labels and targets (views, not copies).
  Batch slice(int64_t start, int64_t count) const {
    Batch part{images.narrow(0, start, count), labels.narrow(0, start, count), {}};
    if (targets.defined()) part.targets = targets.narrow(0, start, count);
    return part;
  }
};

// Inputs are (pixel / 255 - mean) / std per channel. The default is ImageNet's statistics, which
// torchvision's and timm's pretrained ResNets expect (train --normalize imagenet).
struct Normalization {
  std::array<float, 3> mean{0.485f, 0.456f, 0.406f};
  std::array<float, 3> std{0.229f, 0.224f, 0.225f};
};

// The mean and standard deviation of each channel over the pixels of `items` (dataset indices):
// train --normalize dataset.
Normalization measure_normalization(const TileDataset& data, const std::vector<int64_t>& items);

// Histology has no canonical orientation: flips and 90-degree rotations are free augmentations.
struct Augmentation {
  bool dihedral = true;  // one of the 8 flips/rotations per image
  int max_shift = 0;     // random translation up to this many pixels (reflect-padded)
  // Stain and scanner variation between slides: each image's normalised channels are scaled by
  // 1 + u and offset by v, u and v uniform in [-color_jitter, color_jitter] per channel.
  double color_jitter = 0;
  // Stain variation in HED space (data/stain.h): each image's haematoxylin, eosin and residual
  // concentrations scaled by U(1 - s, 1 + s) and shifted by U(-s, s) optical density (0: off).
  double hed_sigma = 0;
  // Mixup and CutMix (as timm does them, per batch): with probability mix_prob the batch is mixed
  // with itself reversed, by mixup (images blended, lambda ~ Beta(a, a)) or by CutMix (a box of
  // the reversed batch pasted, lambda the share left), one of the two at even odds when both are
  // on; the targets are lambda y + (1 - lambda) y_reversed, each label-smoothed by
  // target_smoothing. Off when both alphas are 0.
  double mixup_alpha = 0;
  double cutmix_alpha = 0;
  double mix_prob = 1;
  double target_smoothing = 0;
  bool mixing() const { return mixup_alpha > 0 || cutmix_alpha > 0; }
};

// Mixes `images` (float [B, 3, H, W]) in place as `augment` says and returns the soft targets of
// `labels` over `classes`; the draws come from `rng`.
torch::Tensor mix_batch(torch::Tensor& images, const torch::Tensor& labels, int64_t classes, const Augmentation& augment,
                        std::mt19937_64& rng);

// The order of `items` for one epoch, shuffled from (seed, epoch) when `shuffle`, then sharded:
// rank r of `world` takes every world-th item. Each rank gets the same count (the last
// items are dropped when needed), so all ranks take the same number of steps.
std::vector<int64_t> epoch_order(const std::vector<int64_t>& items, uint64_t seed, int64_t epoch, bool shuffle,
                                 int rank = 0, int world = 1);
// Rank r of `world`'s share of one epoch's `order`: every world-th item from the r-th, the same
// count on every rank.
std::vector<int64_t> rank_shard(const std::vector<int64_t>& order, int rank, int world);

class BatchMaker {
 public:
  // `format`: ChannelsLast gives NHWC-strided batches for a channels-last model.
  BatchMaker(const TileDataset& data, torch::Device device,
             torch::MemoryFormat format = torch::MemoryFormat::Contiguous, Normalization normalization = {});
  // A batch of dataset items (indices into data.rows). Without `augment` (evaluation) images
  // are only normalised.
  Batch make(const int64_t* items, int64_t count, const Augmentation* augment = nullptr,
             std::mt19937_64* rng = nullptr) const;
  // The labels alone (images undefined): for pipeline stages that never see the images.
  Batch make_labels(const int64_t* items, int64_t count) const;

 private:
  // Per-image, per-channel gain and offset on normalised images (Augmentation::color_jitter).
  torch::Tensor jitter_colors(const torch::Tensor& images, double strength, std::mt19937_64& rng) const;

  const TileDataset& data_;
  torch::Device device_;
  torch::MemoryFormat format_;
  Normalization normalization_;
  torch::Tensor tiles_;  // uint8 [rows, H, W, 3], on device_
};

// For each output pixel of a batch of augmented tiles, its index in the tile cache viewed as
// [tiles x H x W] pixels: rows [B] pick the tiles; symmetry [B] (bit 0 flip x, bit 1 flip y,
// bit 2 transpose: the 8 symmetries of the square) and shifts dy, dx [B] (reflected at the
// border) say how each moves. One gather with this index is the whole augmentation, on any device.
torch::Tensor source_pixel_index(const torch::Tensor& rows, const torch::Tensor& symmetry, const torch::Tensor& dy,
                                 const torch::Tensor& dx, int64_t size);

// uint8 [B, H, W, 3] to float pixel values [B, H, W, 3], each image's stains jittered
// (Augmentation::hed_sigma; data/stain.h), on the pixels' device.
torch::Tensor jitter_stains(const torch::Tensor& pixels, double sigma, std::mt19937_64& rng);

// uint8 [B, H, W, 3] to float [B, 3, H, W] normalised (ImageNet's statistics by default, as
// torchvision models expect), laid out in `format`.
torch::Tensor normalize_uint8_nhwc(const torch::Tensor& nhwc_uint8,
                                   torch::MemoryFormat format = torch::MemoryFormat::Contiguous,
                                   const Normalization& normalization = {});

}  // namespace histotrain
