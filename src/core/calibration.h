// Temperature scaling (Guo et al., 2017): one number T that divides every logit, fitted on the
// validation split after training by minimising the negative log-likelihood. It leaves the
// ranking of the classes of a single view unchanged and makes the probabilities honest: a model
// that says 0.9 should be right nine times in ten.
#pragma once
#include <torch/torch.h>

namespace histotrain {

// Probabilities [N, K] (fp32, CPU) from `view_logits` [N, V, K] (V = 1, or the 8 views of
// test-time augmentation): softmax(log(p) / temperature), p the mean over the views of
// softmax(logits). For one view that is softmax(logits / temperature); with several, the
// temperature rescales the averaged prediction, so it never changes which class is predicted.
torch::Tensor probabilities_at(const torch::Tensor& view_logits, double temperature = 1.0);

// The mean negative log-likelihood of `labels` [N] under probabilities_at(view_logits, temperature).
double nll_at(const torch::Tensor& view_logits, const torch::Tensor& labels, double temperature);

// The temperature in [0.05, 20] with the least nll_at, by golden-section search on log T (the
// likelihood is convex in 1/T, so it has one minimum); 1 when there are no images.
double fit_temperature(const torch::Tensor& view_logits, const torch::Tensor& labels);

}  // namespace histotrain
