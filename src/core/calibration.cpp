#include "core/calibration.h"

#include <cmath>

namespace histotrain {

namespace {

// log of the mean over the views of softmax(logits), per image and class.
torch::Tensor log_mean_probabilities(const torch::Tensor& view_logits) {
  const torch::Tensor per_view = torch::log_softmax(view_logits, 2);
  return torch::logsumexp(per_view, 1) - std::log(static_cast<double>(view_logits.size(1)));
}

}  // namespace

torch::Tensor probabilities_at(const torch::Tensor& view_logits, double temperature) {
  const torch::Tensor logits = view_logits.to(torch::kFloat32);
  // One view: the logits themselves (the same softmax, without a log's rounding).
  const torch::Tensor scores = logits.size(1) == 1 ? logits.squeeze(1) : log_mean_probabilities(logits);
  return torch::softmax(scores / temperature, 1).contiguous();
}

double nll_at(const torch::Tensor& view_logits, const torch::Tensor& labels, double temperature) {
  const torch::Tensor log_p = torch::log_softmax(log_mean_probabilities(view_logits.to(torch::kFloat64)) / temperature, 1);
  return -log_p.gather(1, labels.to(torch::kLong).view({-1, 1})).mean().item<double>();
}

double fit_temperature(const torch::Tensor& view_logits, const torch::Tensor& labels) {
  if (view_logits.size(0) == 0) return 1.0;
  const auto nll = [&](double log_t) { return nll_at(view_logits, labels, std::exp(log_t)); };
  const double golden = (std::sqrt(5.0) - 1) / 2;
  double low = std::log(0.05), high = std::log(20.0);
  double a = high - golden * (high - low), b = low + golden * (high - low);
  double fa = nll(a), fb = nll(b);
  while (high - low > 1e-7) {
    if (fa <= fb) {
      high = b, b = a, fb = fa;
      a = high - golden * (high - low), fa = nll(a);
    } else {
      low = a, a = b, fa = fb;
      b = low + golden * (high - low), fb = nll(b);
    }
  }
  return std::exp((low + high) / 2);
}

}  // namespace histotrain
