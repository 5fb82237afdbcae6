// The training loss of every step implementation (the eager step, the CUDA graph, pipeline stages
// over ranks and over devices): cross-entropy with label smoothing and class weights, computed in fp32 whatever
// precision produced the logits, and the number of correct predictions. Both stay tensors on the
// logits' device: reading them would make the host wait for the step.
#pragma once
#include <torch/torch.h>

namespace histotrain {

struct LossAndCorrect {
  torch::Tensor loss;     // the batch mean, fp32, with its graph for backward
  torch::Tensor correct;  // int64 count of argmax == label
};

struct LossOptions {
  double label_smoothing = 0;
  // Per-class weights of the cross-entropy (--balance loss), fp32; undefined: every class 1. The
  // batch's loss is then the weighted mean, sum(w_y l) / sum(w_y), so its scale stays that of
  // the unweighted loss.
  torch::Tensor class_weights;
};

LossAndCorrect classification_loss(const torch::Tensor& logits, const torch::Tensor& labels, const LossOptions& options);
// With soft `targets` ([B, classes], rows summing to 1; mixup and CutMix, already label-smoothed):
// the mean of -sum(target log softmax); correct still counts argmax == labels. Undefined targets:
// the loss above.
LossAndCorrect classification_loss(const torch::Tensor& logits, const torch::Tensor& labels, const torch::Tensor& targets,
                                   const LossOptions& options);

}  // namespace histotrain
