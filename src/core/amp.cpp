#include "core/amp.h"

#include <cmath>

#include "core/compat.h"
#include "util/errors.h"

namespace histotrain {

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::fp32;
  if (const auto precision = from_spelling<Precision>(name)) return *precision;
  throw UsageError("--amp must be " + spelling_choices<Precision>() + ", not '" + name + "'");
}

std::string precision_name(Precision precision) { return spelling(precision); }

void check_precision_supported(Precision precision, const torch::Device& device) {
  if (precision == Precision::fp16 && !device.is_cuda())
    throw UsageError("--amp fp16 needs a CUDA device (fp16 autocast on CPU is not supported); use --amp bf16 on CPU");
}

AutocastScope::AutocastScope(Precision precision, const torch::Device& device)
    : device_type_(device.type()), previous_dtype_(c10::ScalarType::Undefined) {
  if (precision == Precision::fp32) return;
  active_ = true;
  previous_enabled_ = compat::autocast_enabled(device_type_);
  previous_dtype_ = compat::autocast_dtype(device_type_);
  at::autocast::increment_nesting();
  compat::set_autocast(device_type_, true, precision == Precision::bf16 ? torch::kBFloat16 : torch::kFloat16);
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  compat::set_autocast(device_type_, previous_enabled_, previous_dtype_);
  // Cast weights are cached while any autocast scope is open; drop them when the last one closes.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
}

void to_channels_last(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters())
    if (p.dim() == 4) p.set_data(p.data().contiguous(torch::MemoryFormat::ChannelsLast));
}

GradScaler::GradScaler(bool enabled, GradScalerOptions options)
    : enabled_(enabled), options_(options), scale_(options.init_scale) {}

torch::Tensor GradScaler::scale_loss(const torch::Tensor& loss) const { return enabled_ ? loss * scale_ : loss; }

bool GradScaler::unscale_and_check(torch::optim::Optimizer& optimizer) {
  std::vector<torch::Tensor> grads;
  for (auto& group : optimizer.param_groups())
    for (auto& p : group.params())
      if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return true;
  const auto options = torch::TensorOptions().dtype(torch::kFloat32).device(grads.front().device());
  torch::Tensor found_inf = torch::zeros({1}, options);
  const torch::Tensor inv_scale = torch::full({1}, 1.0 / scale_, options);
  if (grads.front().is_cuda()) {
    // One fused kernel over all gradients (CUDA only in LibTorch 1.13).
    at::_amp_foreach_non_finite_check_and_unscale_(grads, found_inf, inv_scale);
  } else {
    for (auto& g : grads) {
      found_inf = torch::maximum(found_inf, torch::logical_not(torch::isfinite(g)).any().to(torch::kFloat32).view({1}));
      g.mul_(inv_scale);
    }
  }
  if (reduce_found_inf_) reduce_found_inf_(found_inf);
  return found_inf.item<float>() == 0.0f;
}

void GradScaler::update(bool found_inf) {
  if (found_inf) {
    scale_ *= options_.backoff_factor;
    growth_tracker_ = 0;
  } else if (++growth_tracker_ >= options_.growth_interval) {
    scale_ *= options_.growth_factor;
    growth_tracker_ = 0;
  }
}

bool GradScaler::step(torch::optim::Optimizer& optimizer) {
  if (!enabled_) {
    optimizer.step();
    return true;
  }
  const bool finite = unscale_and_check(optimizer);
  if (finite) optimizer.step();
  update(!finite);
  return finite;
}

void GradScaler::restore(double scale, int64_t growth_tracker) {
  if (!std::isfinite(scale) || scale <= 0 || growth_tracker < 0)
    throw Error("a checkpoint's loss-scaler state is invalid (scale " + std::to_string(scale) + ")");
  scale_ = scale;
  growth_tracker_ = growth_tracker;
}

}  // namespace histotrain
