#include "core/loss.h"

namespace histotrain {

LossAndCorrect classification_loss(const torch::Tensor& logits, const torch::Tensor& labels, const LossOptions& options) {
  const torch::Tensor fp32 = logits.to(torch::kFloat32);
  auto cross_entropy = torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(options.label_smoothing);
  if (options.class_weights.defined()) cross_entropy.weight(options.class_weights.to(fp32.device()));
  LossAndCorrect result;
  result.loss = torch::nn::functional::cross_entropy(fp32, labels, cross_entropy);
  result.correct = (fp32.argmax(1) == labels).sum();
  return result;
}

LossAndCorrect classification_loss(const torch::Tensor& logits, const torch::Tensor& labels, const torch::Tensor& targets,
                                   const LossOptions& options) {
  if (!targets.defined()) return classification_loss(logits, labels, options);
  const torch::Tensor fp32 = logits.to(torch::kFloat32);
  LossAndCorrect result;
  result.loss = -(targets.to(fp32.device()) * torch::log_softmax(fp32, 1)).sum(1).mean();
  result.correct = (fp32.argmax(1) == labels).sum();
  return result;
}

}  // namespace histotrain
