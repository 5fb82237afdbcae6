#include "core/sgd_update.h"

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

// What one parameter's update needs, in the parameters' precision (as SGD's kernels take them).
struct SgdConstants {
  float weight_decay, momentum, neg_lr;
};

// Whether p, its gradient and its buffer lie element for element at the same offsets, so that one
// loop over their memory updates them together.
bool same_dense_layout(const torch::Tensor& p, const torch::Tensor& g, const torch::Tensor& buffer) {
  auto fits = [&](const torch::Tensor& t) {
    return !t.defined() || (t.layout() == torch::kStrided && t.scalar_type() == torch::kFloat32 && t.device().is_cpu() &&
                            t.sizes() == p.sizes() && t.strides() == p.strides());
  };
  return p.scalar_type() == torch::kFloat32 && p.device().is_cpu() && p.is_non_overlapping_and_dense() && fits(g) &&
         fits(buffer);
}

// SGD's update of one parameter in a single pass over its memory: d = g + wd p; buf = m buf + d;
// p -= lr (Nesterov ? d + m buf : buf).
template <bool kMomentum, bool kNesterov>
void update_in_one_pass(float* p, const float* g, float* buffer, int64_t n, SgdConstants c) {
  constexpr int64_t kGrain = 1 << 15;  // smaller tensors are not worth a thread
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float d = g[i] + c.weight_decay * p[i];
      float step = d;
      if (kMomentum) {
        const float b = buffer[i] * c.momentum + d;
        buffer[i] = b;
        step = kNesterov ? d + c.momentum * b : b;
      }
      p[i] = p[i] + c.neg_lr * step;
    }
  });
}

// The same with ATen's ops, for a parameter whose tensors are laid out differently.
void update_with_aten(const torch::Tensor& p, const torch::Tensor& g, const torch::Tensor& buffer,
                      const torch::optim::SGDOptions& o) {
  torch::Tensor d = o.weight_decay() != 0 ? g.add(p, o.weight_decay()) : g;
  if (o.momentum() != 0) {
    buffer.mul_(o.momentum()).add_(d);
    d = o.nesterov() ? d.add(buffer, o.momentum()) : buffer;
  }
  p.add_(d, -o.lr());
}

}  // namespace

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

void cpu_sgd_step(torch::optim::SGD& optimizer) {
  for (const auto& group : optimizer.param_groups())
    if (static_cast<const torch::optim::SGDOptions&>(group.options()).dampening() != 0) {
      optimizer.step();  // a zero buffer would not give SGD's first step; make_optimizer never dampens
      return;
    }
  torch::NoGradGuard no_grad;
  for (SgdGroup& g : sgd_groups(optimizer)) {
    const auto& o = *g.options;
    const SgdConstants c{static_cast<float>(o.weight_decay()), static_cast<float>(o.momentum()),
                         static_cast<float>(-o.lr())};
    const bool momentum = o.momentum() != 0;
    for (size_t i = 0; i < g.params.size(); ++i) {
      torch::Tensor& p = g.params[i];
      const torch::Tensor buffer = momentum ? g.buffers[i] : torch::Tensor();
      if (!same_dense_layout(p, g.grads[i], buffer)) {
        update_with_aten(p, g.grads[i], buffer, o);
        continue;
      }
      float* data = p.data_ptr<float>();
      const float* grad = g.grads[i].data_ptr<float>();
      float* buf = momentum ? buffer.data_ptr<float>() : nullptr;
      if (!momentum)
        update_in_one_pass<false, false>(data, grad, buf, p.numel(), c);
      else if (o.nesterov())
        update_in_one_pass<true, true>(data, grad, buf, p.numel(), c);
      else
        update_in_one_pass<true, false>(data, grad, buf, p.numel(), c);
    }
  }
}

double clip_gradient_norm(torch::optim::Optimizer& optimizer, double max_norm) {
  std::vector<torch::Tensor> grads;
  for (auto& group : optimizer.param_groups())
    for (auto& p : group.params())
      if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return 0;
  torch::Tensor squares = torch::zeros({}, grads.front().options().dtype(torch::kFloat64));
  for (const auto& g : grads) squares += g.to(torch::kFloat64).square().sum();
  const double norm = std::sqrt(squares.item<double>());
  if (norm > max_norm) {
    const double scale = max_norm / (norm + 1e-6);
    for (auto& g : grads) g.mul_(scale);
  }
  return norm;
}

void clear_gradients(torch::optim::Optimizer& optimizer) {
  for (auto& group : optimizer.param_groups())
    for (auto& p : group.params()) p.mutable_grad().reset();
}

void fast_sgd_step(torch::optim::SGD& optimizer, const torch::Device& device) {
  if (device.is_cuda())
    multi_tensor_sgd_step(optimizer);
  else
    cpu_sgd_step(optimizer);
}

}  // namespace histotrain
