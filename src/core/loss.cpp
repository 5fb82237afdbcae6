#include "core/loss.h"

namespace histotrain {

LossAndCorrect classification_loss(const torch::Tensor& logits, const torch::Tensor& labels, double label_smoothing) {
  const torch::Tensor fp32 = logits.to(torch::kFloat32);
  LossAndCorrect result;
  result.loss = torch::nn::functional::cross_entropy(
      fp32, labels, torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(label_smoothing));
  result.correct = (fp32.argmax(1) == labels).sum();
  return result;
}

}  // namespace histotrain
