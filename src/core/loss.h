// The training loss of every step implementation (the eager step, the CUDA graph, pipeline stages
// over ranks and over devices): cross-entropy with label smoothing, computed in fp32 whatever
// precision produced the logits, and the number of correct predictions. Both stay tensors on the
// logits' device: reading them would make the host wait for the step.
#pragma once
#include <torch/torch.h>

namespace histotrain {

struct LossAndCorrect {
  torch::Tensor loss;     // the batch mean, fp32, with its graph for backward
  torch::Tensor correct;  // int64 count of argmax == label
};

LossAndCorrect classification_loss(const torch::Tensor& logits, const torch::Tensor& labels, double label_smoothing);

}  // namespace histotrain
