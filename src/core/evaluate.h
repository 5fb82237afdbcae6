// Evaluation of a model on a set of dataset items: confusion matrix and mean loss.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "core/amp.h"
#include "core/metrics.h"
#include "data/batches.h"
#include "model/resnet.h"

namespace histotrain {

struct EvalResult {
  ConfusionMatrix confusion;
  ConfusionMatrix single_view;  // with tta: the predictions of the tiles as they are; else == confusion
  // fp32 logits [N, V, K] on the CPU, in the order of the items: V = 1, or the 8 views with tta.
  // What the probability metrics, calibration and saved predictions are computed from.
  torch::Tensor view_logits;
  double loss = 0;     // mean cross-entropy (no label smoothing)
  double seconds = 0;  // wall time, batches included
};

// Runs in eval mode without gradients; restores the model's previous mode afterwards.
// `tta` (test-time augmentation): each tile is classified from the mean of the softmax over its 8
// flips and 90-degree rotations (8x the work); the loss stays that of the tile as it is.
EvalResult evaluate(ResNet& model, const BatchMaker& batches, const std::vector<int64_t>& items, int64_t classes,
                    int batch_size, Precision precision = Precision::fp32, bool tta = false);

// The 8 symmetries of the square applied to a [B, C, H, W] batch: bit 0 flips x, bit 1 flips y,
// bit 2 transposes.
torch::Tensor dihedral_view(const torch::Tensor& images, int symmetry);

}  // namespace histotrain
