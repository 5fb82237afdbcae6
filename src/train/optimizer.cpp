#include "train/optimizer.h"

#include <set>

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

std::unique_ptr<ScaledSgd> make_optimizer(ResNet& model, const OptimConfig& c, double backbone_lr_scale) {
  const ParameterGroups all = split_for_weight_decay(*model);
  std::set<const void*> head;
  for (const auto& p : model->fc->parameters()) head.insert(p.unsafeGetTensorImpl());
  const bool split_head = backbone_lr_scale != 1;
  std::vector<torch::optim::OptimizerParamGroup> groups;
  std::vector<double> shares;
  // The parameters of `from` that learn, and (when the head is split off) are in the head or not.
  auto add = [&](const std::vector<torch::Tensor>& from, double decay, bool in_head, double share) {
    std::vector<torch::Tensor> params;
    for (const auto& p : from)
      if (p.requires_grad() && (!split_head || head.count(p.unsafeGetTensorImpl()) == (in_head ? 1u : 0u)))
        params.push_back(p);
    if (params.empty()) return;
    groups.emplace_back(params, std::make_unique<torch::optim::SGDOptions>(torch::optim::SGDOptions(c.lr * share)
                                                                               .momentum(c.momentum)
                                                                               .nesterov(c.momentum > 0)
                                                                               .weight_decay(decay)));
    shares.push_back(share);
  };
  add(all.decay, c.weight_decay, true, 1);
  add(all.no_decay, 0, true, 1);
  if (split_head) {
    add(all.decay, c.weight_decay, false, backbone_lr_scale);
    add(all.no_decay, 0, false, backbone_lr_scale);
  }
  return std::make_unique<ScaledSgd>(groups, std::move(shares), c.lr);
}

void set_learning_rate(ScaledSgd& optimizer, double lr) {
  auto& groups = optimizer.param_groups();
  for (size_t g = 0; g < groups.size(); ++g)
    static_cast<torch::optim::SGDOptions&>(groups[g].options()).lr(lr * optimizer.lr_shares.at(g));
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
