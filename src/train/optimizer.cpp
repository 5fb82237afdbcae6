#include "train/optimizer.h"

#include <set>

namespace histotrain {

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

}  // namespace histotrain
