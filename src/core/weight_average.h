// An exponential moving average of a model's weights (and BatchNorm statistics), the copy that
// is validated and saved when --ema is on: averaging the last few hundred steps of a short,
// high-learning-rate run gives a model that generalises better than the last step's weights.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "model/resnet.h"

namespace histotrain {

class WeightAverage {
 public:
  // A copy of `model` (same architecture, device and memory format) that follows it.
  WeightAverage(ResNet& model, double decay);

  // The share of the new weights at optimizer step `step` (counted from 0): it ramps up as
  // (1 + step) / (10 + step) until it reaches `decay`, so the average forgets the random start
  // quickly even in a run of a few hundred steps.
  double decay_at(int64_t step) const;

  // average = decay_at(step) * average + (1 - decay_at(step)) * model.
  void update(int64_t step);
  // The same with 1 - decay in `new_share`, a 0-dim tensor on the model's device (for a CUDA graph).
  void update(const torch::Tensor& new_share);

  // Starts the average again from the model's current weights (after a resume without one).
  void reset();

  ResNet& model() { return average_; }
  double decay() const { return decay_; }

 private:
  double decay_;
  ResNet average_{nullptr};
  std::vector<torch::Tensor> source_, target_;        // floating-point parameters and buffers
  std::vector<torch::Tensor> source_int_, target_int_;  // counters (num_batches_tracked): copied
};

}  // namespace histotrain
