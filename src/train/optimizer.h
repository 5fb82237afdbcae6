// The optimizer of every training mode: SGD with Nesterov momentum, weight decay on conv and
// linear weights only, and the per-step helpers the loop needs.
#pragma once
#include <torch/torch.h>

#include <memory>

#include "model/resnet.h"
#include "train/config.h"

namespace histotrain {

// SGD whose parameter groups each take a fixed share of the scheduled learning rate: with
// --backbone-lr-scale S the pretrained layers learn at S times the head's rate.
class ScaledSgd : public torch::optim::SGD {
 public:
  ScaledSgd(const std::vector<torch::optim::OptimizerParamGroup>& groups, std::vector<double> shares, double lr)
      : torch::optim::SGD(groups, torch::optim::SGDOptions(lr)), lr_shares(std::move(shares)) {}
  std::vector<double> lr_shares;  // one per parameter group
};

// The parameters that require gradients (a frozen backbone's do not), in two groups (with and
// without weight decay), or four when `backbone_lr_scale` differs from 1: the head's two, then
// the backbone's two at that share of the rate.
std::unique_ptr<ScaledSgd> make_optimizer(ResNet& model, const OptimConfig& config, double backbone_lr_scale = 1);

// Sets each group's rate to its share of `lr`.
void set_learning_rate(ScaledSgd& optimizer, double lr);

// The update of torch::optim::SGD (Nesterov momentum, per-group weight decay, no dampening) with
// multi-tensor (foreach) kernels: a few launches per parameter group instead of about five per
// parameter, which a GPU step of a few milliseconds cannot afford. Momentum buffers live in the
// optimizer's own state, so checkpoints and SGD::step() see the same values; a missing buffer
// starts at zero, which gives the same first step as SGD's clone of the gradient.
void multi_tensor_sgd_step(torch::optim::SGD& optimizer);
// The same with the learning rate read from `neg_lr`, a 0-dim tensor on the parameters' device
// holding -lr: a captured CUDA graph then reads the current value at each replay.
void multi_tensor_sgd_step(torch::optim::SGD& optimizer, const torch::Tensor& neg_lr);

// The same update on CPUs, each parameter's in one pass over its memory: parameter, gradient and
// momentum buffer read once, parameter and buffer written once (5 tensor-sized transfers, against
// 14 and two temporaries in SGD::step()'s five ATen ops). Values agree with SGD::step() to rounding (no fused multiply-adds);
// tensors of another dtype or layout take ATen's ops, and dampening takes SGD::step() itself.
void cpu_sgd_step(torch::optim::SGD& optimizer);

// Drops the gradients instead of zero-filling them (PyTorch's set_to_none): backward then
// writes fresh tensors, and no memset per parameter runs each step. LibTorch 1.13's
// Optimizer::zero_grad() can only zero-fill.
void clear_gradients(torch::optim::Optimizer& optimizer);

}  // namespace histotrain
