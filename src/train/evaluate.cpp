#include "train/evaluate.h"

#include <chrono>

namespace histotrain {

EvalResult evaluate(ResNet& model, const BatchMaker& batches, const std::vector<int64_t>& items, int64_t classes,
                    int batch_size, Precision precision) {
  const auto start = std::chrono::steady_clock::now();
  const bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard no_grad;
  EvalResult result{ConfusionMatrix(classes)};
  // Counts accumulate on the device as one [truth * K + predicted] histogram: no per-batch sync.
  torch::Tensor pairs, loss_sum;
  for (size_t first = 0; first < items.size(); first += static_cast<size_t>(batch_size)) {
    const int64_t n = std::min<int64_t>(batch_size, static_cast<int64_t>(items.size() - first));
    const Batch batch = batches.make(items.data() + first, n);
    torch::Tensor logits;
    {
      AutocastScope autocast(precision, batch.images.device());
      logits = model->forward(batch.images);
    }
    logits = logits.to(torch::kFloat32);
    const torch::Tensor labels = batch.labels.to(logits.device());  // a model spread over devices ends elsewhere
    const torch::Tensor loss = torch::nn::functional::cross_entropy(
        logits, labels, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    const torch::Tensor cell = labels * classes + logits.argmax(1);
    const torch::Tensor counts = torch::bincount(cell, {}, classes * classes);
    pairs = pairs.defined() ? pairs + counts : counts;
    loss_sum = loss_sum.defined() ? loss_sum + loss : loss;
  }
  if (pairs.defined()) {
    const torch::Tensor cpu = pairs.to(torch::kCPU).to(torch::kLong);
    for (int64_t i = 0; i < classes * classes; ++i) result.confusion.counts()[i] = cpu[i].item<int64_t>();
    result.loss = loss_sum.item<double>() / static_cast<double>(items.size());
  }
  if (was_training) model->train();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace histotrain
