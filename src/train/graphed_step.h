// The whole train step (forward, loss, backward, optimizer update, weight average) captured once
// as a CUDA graph and replayed every step: one launch instead of ~1,000 kernel launches from the
// host, so a GPU step of a few milliseconds is not paced by the CPU. It needs a CUDA build of
// LibTorch 2.x; elsewhere available() is false and the trainer runs the same step eagerly.
#pragma once
#include <torch/torch.h>

#include <memory>

#include "core/amp.h"
#include "core/loss.h"
#include "core/weight_average.h"
#include "data/batches.h"
#include "model/resnet.h"

namespace histotrain {

class GraphedTrainStep {
 public:
  // Whether this build can capture CUDA graphs.
  static bool available();

  // Runs three warm-up steps on `example` (cuDNN picks its kernels, the allocator settles) with the
  // learning rate at zero, captures one step, and restores every buffer the warm-up touched.
  // `average` may be null. Throws Error where graphs are not available. With `capture` false,
  // the same warm-up, static buffers and step run eagerly on any device: how the CPU build
  // tests everything but the capture itself.
  GraphedTrainStep(ResNet model, torch::optim::SGD& optimizer, Precision precision, const LossOptions& loss_options,
                   WeightAverage* average, const Batch& example, bool capture = true);
  ~GraphedTrainStep();
  GraphedTrainStep(const GraphedTrainStep&) = delete;
  GraphedTrainStep& operator=(const GraphedTrainStep&) = delete;

  // Copies `batch` into the graph's input buffers, sets the learning rate and the average's share
  // of new weights (1 - decay), and replays the step. Nothing waits for the GPU.
  void step(const Batch& batch, double lr, double average_share);

  // Sums over the steps since the last reset_sums(), on the device: cross-entropy and correct
  // predictions (as in the eager loop).
  torch::Tensor loss_sum() const;
  torch::Tensor correct() const;
  void reset_sums();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace histotrain
