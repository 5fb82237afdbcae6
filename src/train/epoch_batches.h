// The batches of one epoch on one rank, in the order its steps take them.
#pragma once
#include <cstdint>
#include <future>
#include <vector>

#include "data/batches.h"
#include "train/run.h"

namespace histotrain {

// This rank's batches of one epoch: its disjoint shard of the epoch's shuffled order, augmented.
// Augmentation randomness depends only on (seed, epoch, rank, step): a run resumed at any step
// replays it exactly, and a prefetching thread needs no shared generator.
class EpochBatches {
 public:
  EpochBatches(const TrainConfig& c, const RunData& data, const RunWorld& world, const StepEngine& engine,
               const BatchMaker& maker, int64_t epoch);
  Batch at(int64_t step_in_epoch) const;

 private:
  const BatchMaker& maker_;
  int64_t batch_size_;  // images of one optimizer step (all its --accumulate batches)
  uint64_t seed_;
  int64_t epoch_;
  int rank_;
  bool labels_only_;  // later pipeline stages never see the images: they need the labels only
  std::vector<int64_t> order_;
  Augmentation augmentation_;
};

// The batches of steps first .. end - 1 in turn; with --prefetch the next one is assembled on a
// second thread while the current step runs.
class BatchStream {
 public:
  BatchStream(const EpochBatches& batches, int64_t first, int64_t end, bool prefetch);
  ~BatchStream() { finish(); }
  BatchStream(const BatchStream&) = delete;
  BatchStream& operator=(const BatchStream&) = delete;

  Batch next();
  // Waits for a prefetch still running when a signal stopped the epoch.
  void finish();

 private:
  void start_next();

  const EpochBatches& batches_;
  int64_t next_, end_;
  bool prefetch_;
  std::future<Batch> pending_;
};

}  // namespace histotrain
