#include "core/evaluate.h"
#include "util/clock.h"

#include <chrono>

namespace histotrain {

torch::Tensor dihedral_view(const torch::Tensor& images, int symmetry) {
  torch::Tensor view = images;
  if (symmetry & 1) view = view.flip({3});
  if (symmetry & 2) view = view.flip({2});
  if (symmetry & 4) view = view.transpose(2, 3);
  return view.contiguous(images.suggest_memory_format());
}

namespace {

// The model's logits, in fp32, under the run's precision.
torch::Tensor logits_of(ResNet& model, const torch::Tensor& images, Precision precision) {
  AutocastScope autocast(precision, images.device());
  return model->forward(images).to(torch::kFloat32);
}

}  // namespace

EvalResult evaluate(ResNet& model, const BatchMaker& batches, const std::vector<int64_t>& items, int64_t classes,
                    int batch_size, Precision precision, bool tta) {
  const auto start = std::chrono::steady_clock::now();
  const bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard no_grad;
  EvalResult result;
  result.confusion = ConfusionMatrix(classes);
  result.single_view = ConfusionMatrix(classes);
  // Counts accumulate on the device as one [truth * K + predicted] histogram: no per-batch sync.
  torch::Tensor pairs, single_pairs, loss_sum;
  std::vector<torch::Tensor> view_logits;
  for (size_t first = 0; first < items.size(); first += static_cast<size_t>(batch_size)) {
    const int64_t n = std::min<int64_t>(batch_size, static_cast<int64_t>(items.size() - first));
    const Batch batch = batches.make(items.data() + first, n);
    const torch::Tensor logits = logits_of(model, batch.images, precision);
    torch::Tensor scores = logits;
    std::vector<torch::Tensor> views{logits};
    if (tta) {
      scores = logits.softmax(1);
      for (int symmetry = 1; symmetry < 8; ++symmetry) {
        views.push_back(logits_of(model, dihedral_view(batch.images, symmetry), precision));
        scores = scores + views.back().softmax(1);
      }
    }
    view_logits.push_back(torch::stack(views, 1));
    const torch::Tensor labels = batch.labels.to(logits.device());  // a model spread over devices ends elsewhere
    const torch::Tensor loss = torch::nn::functional::cross_entropy(
        logits, labels, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    const auto histogram = [&](const torch::Tensor& predicted) {
      return torch::bincount(labels * classes + predicted, {}, classes * classes);
    };
    const torch::Tensor counts = histogram(scores.argmax(1));
    const torch::Tensor single_counts = tta ? histogram(logits.argmax(1)) : counts;
    pairs = pairs.defined() ? pairs + counts : counts;
    single_pairs = single_pairs.defined() ? single_pairs + single_counts : single_counts;
    loss_sum = loss_sum.defined() ? loss_sum + loss : loss;
  }
  if (pairs.defined()) {
    const torch::Tensor cpu = pairs.to(torch::kCPU).to(torch::kLong), single = single_pairs.to(torch::kCPU).to(torch::kLong);
    for (int64_t i = 0; i < classes * classes; ++i) {
      result.confusion.counts()[i] = cpu[i].item<int64_t>();
      result.single_view.counts()[i] = single[i].item<int64_t>();
    }
    result.loss = loss_sum.item<double>() / static_cast<double>(items.size());
    result.view_logits = torch::cat(view_logits).to(torch::kCPU).contiguous();
  } else {
    result.view_logits = torch::zeros({0, tta ? 8 : 1, classes});
  }
  if (was_training) model->train();
  result.seconds = seconds_since(start);
  return result;
}

}  // namespace histotrain
