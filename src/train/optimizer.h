// The optimizer of every training mode: SGD with Nesterov momentum, weight decay on conv and
// linear weights only, and the per-step helpers the loop needs.
#pragma once
#include <torch/torch.h>

#include <memory>

#include "model/resnet.h"
#include "train/config.h"

namespace histotrain {

std::unique_ptr<torch::optim::SGD> make_optimizer(ResNet& model, const TrainConfig& config);

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

// Drops the gradients instead of zero-filling them (PyTorch's set_to_none): backward then
// writes fresh tensors, and no memset per parameter runs each step. LibTorch 1.13's
// Optimizer::zero_grad() can only zero-fill.
void clear_gradients(torch::optim::Optimizer& optimizer);

}  // namespace histotrain
