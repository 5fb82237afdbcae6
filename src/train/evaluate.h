// Evaluation of a model on a set of dataset items: confusion matrix and mean loss.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "data/batches.h"
#include "model/resnet.h"
#include "train/amp.h"
#include "train/metrics.h"

namespace histotrain {

struct EvalResult {
  ConfusionMatrix confusion;
  double loss = 0;     // mean cross-entropy (no label smoothing)
  double seconds = 0;  // wall time, batches included
};

// Runs in eval mode without gradients; restores the model's previous mode afterwards.
EvalResult evaluate(ResNet& model, const BatchMaker& batches, const std::vector<int64_t>& items, int64_t classes,
                    int batch_size, Precision precision = Precision::fp32);

}  // namespace histotrain
