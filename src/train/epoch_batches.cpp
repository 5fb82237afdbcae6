#include "train/epoch_batches.h"

#include <random>

#include "data/class_balance.h"

namespace histotrain {

namespace {

std::mt19937_64 augmentation_rng(uint64_t seed, int64_t epoch, int rank, int64_t step_in_epoch) {
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(epoch),
                    static_cast<uint32_t>(rank), static_cast<uint32_t>(step_in_epoch), 0x68747261u};
  return std::mt19937_64(seq);
}

// This rank's items for the epoch: its shard of one order that every rank computes alike.
std::vector<int64_t> training_order(const TrainConfig& c, const RunData& data, const RunWorld& world, int64_t epoch) {
  const uint64_t seed = c.job.seed;
  const int rank = world.dp->data_rank(), ranks = world.data_ranks();
  if (c.optim.balance != ClassBalance::sampler)
    return epoch_order(data.split.train, seed, epoch, /*shuffle=*/true, rank, ranks);
  return rank_shard(class_balanced_order(data.split.train, data.tiles.labels, seed, epoch), rank, ranks);
}

}  // namespace

EpochBatches::EpochBatches(const TrainConfig& c, const RunData& data, const RunWorld& world,
                           const StepEngine& engine, const BatchMaker& maker, int64_t epoch)
    : maker_(maker), batch_size_(int64_t{c.optim.batch_size} * c.optim.accumulate), seed_(c.job.seed),
      epoch_(epoch), rank_(world.dp->data_rank()), labels_only_(engine.pipeline && engine.pipeline->stage() > 0),
      order_(training_order(c, data, world, epoch)) {
  const DataConfig& d = c.data;
  augmentation_.dihedral = d.augment;
  augmentation_.max_shift = d.augment ? static_cast<int>(d.max_shift * d.image_size) : 0;
  augmentation_.color_jitter = d.augment ? d.color_jitter : 0;
  augmentation_.hed_sigma = d.stain_augment.hed_sigma;  // asked for by name: --no-augment leaves it on
  augmentation_.mixup_alpha = d.mixup;
  augmentation_.cutmix_alpha = d.cutmix;
  augmentation_.mix_prob = d.mix_prob;
  augmentation_.target_smoothing = c.optim.label_smoothing;
}

Batch EpochBatches::at(int64_t step_in_epoch) const {
  const int64_t* items = order_.data() + step_in_epoch * batch_size_;
  if (labels_only_) return maker_.make_labels(items, batch_size_);
  std::mt19937_64 rng = augmentation_rng(seed_, epoch_, rank_, step_in_epoch);
  return maker_.make(items, batch_size_, &augmentation_, &rng);
}

BatchStream::BatchStream(const EpochBatches& batches, int64_t first, int64_t end, bool prefetch)
    : batches_(batches), next_(first), end_(end), prefetch_(prefetch) {
  if (prefetch_ && next_ < end_) start_next();
}

Batch BatchStream::next() {
  Batch batch = prefetch_ ? pending_.get() : batches_.at(next_);
  ++next_;
  if (prefetch_ && next_ < end_) start_next();
  return batch;
}

void BatchStream::finish() {
  if (pending_.valid()) pending_.wait();
}

void BatchStream::start_next() {
  pending_ = std::async(std::launch::async, [this, s = next_] { return batches_.at(s); });
}

}  // namespace histotrain
