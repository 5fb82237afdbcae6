// The optimizer of every training mode: SGD with Nesterov momentum, weight decay on conv and
// linear weights only, its parameter groups and learning rate. Its update kernels are in
// core/sgd_update.h, where the pipeline's cost probe uses them too.
#pragma once
#include <torch/torch.h>

#include <memory>

#include "core/sgd_update.h"
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

}  // namespace histotrain
