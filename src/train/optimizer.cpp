#include "train/optimizer.h"

namespace histotrain {

std::unique_ptr<torch::optim::SGD> make_optimizer(ResNet& model, const TrainConfig& c) {
  auto options = [&](double decay) {
    return std::make_unique<torch::optim::SGDOptions>(
        torch::optim::SGDOptions(c.lr).momentum(c.momentum).nesterov(c.momentum > 0).weight_decay(decay));
  };
  ParameterGroups params = split_for_weight_decay(*model);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(params.decay, options(c.weight_decay));
  groups.emplace_back(params.no_decay, options(0.0));
  return std::make_unique<torch::optim::SGD>(groups, torch::optim::SGDOptions(c.lr));
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) static_cast<torch::optim::SGDOptions&>(group.options()).lr(lr);
}

void clear_gradients(torch::optim::Optimizer& optimizer) {
  for (auto& group : optimizer.param_groups())
    for (auto& p : group.params()) p.mutable_grad().reset();
}

}  // namespace histotrain
