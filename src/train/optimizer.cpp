#include "train/optimizer.h"

#include "core/compat.h"

namespace histotrain {

namespace {

// One parameter group's tensors and settings, momentum buffers created where missing.
struct SgdGroup {
  std::vector<torch::Tensor> params, grads, buffers;
  const torch::optim::SGDOptions* options = nullptr;
};

std::vector<SgdGroup> sgd_groups(torch::optim::SGD& optimizer) {
  std::vector<SgdGroup> groups;
  auto& state = optimizer.state();
  for (auto& group : optimizer.param_groups()) {
    SgdGroup g;
    g.options = &static_cast<const torch::optim::SGDOptions&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      g.params.push_back(p);
      g.grads.push_back(p.grad());
      if (g.options->momentum() == 0) continue;
      const auto key = compat::optimizer_state_key(state, p);
      auto found = state.find(key);
      if (found == state.end()) {
        auto fresh = std::make_unique<torch::optim::SGDParamState>();
        fresh->momentum_buffer(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        found = state.emplace(key, std::move(fresh)).first;
      }
      g.buffers.push_back(static_cast<torch::optim::SGDParamState&>(*found->second).momentum_buffer());
    }
    if (!g.params.empty()) groups.push_back(std::move(g));
  }
  return groups;
}

// The step direction of SGD: g + wd p, through momentum (and Nesterov's look-ahead).
std::vector<torch::Tensor> sgd_directions(SgdGroup& g) {
  torch::NoGradGuard no_grad;
  const auto& o = *g.options;
  std::vector<torch::Tensor> d = o.weight_decay() != 0 ? at::_foreach_add(g.grads, g.params, o.weight_decay()) : g.grads;
  if (o.momentum() == 0) return d;
  at::_foreach_mul_(g.buffers, o.momentum());
  at::_foreach_add_(g.buffers, d);
  return o.nesterov() ? at::_foreach_add(d, g.buffers, o.momentum()) : g.buffers;
}

}  // namespace

std::unique_ptr<torch::optim::SGD> make_optimizer(ResNet& model, const OptimConfig& c) {
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

void multi_tensor_sgd_step(torch::optim::SGD& optimizer) {
  torch::NoGradGuard no_grad;
  for (SgdGroup& g : sgd_groups(optimizer)) at::_foreach_add_(g.params, sgd_directions(g), -g.options->lr());
}

void multi_tensor_sgd_step(torch::optim::SGD& optimizer, const torch::Tensor& neg_lr) {
  torch::NoGradGuard no_grad;
  for (SgdGroup& g : sgd_groups(optimizer)) {
    const std::vector<torch::Tensor> d = sgd_directions(g);
    for (size_t i = 0; i < d.size(); ++i) g.params[i].addcmul_(d[i], neg_lr);
  }
}

void clear_gradients(torch::optim::Optimizer& optimizer) {
  for (auto& group : optimizer.param_groups())
    for (auto& p : group.params()) p.mutable_grad().reset();
}

}  // namespace histotrain
