// Mixed precision: which precision a run computes in, an autocast scope for forward passes, and
// the dynamic loss scaler fp16 needs (LibTorch's C++ API has autocast but no GradScaler).
//
// Master weights, optimizer state, BatchNorm statistics and the loss stay fp32 in every mode:
// autocast only changes the dtype inside eligible ops (convolutions, matmuls).
#pragma once
#include <torch/torch.h>

#include <functional>
#include <string>

#include "util/enum_names.h"

namespace histotrain {

enum class Precision { fp32, bf16, fp16 };
template <>
struct Spellings<Precision> {  // fp32 is spelled "none": no mixed precision
  static constexpr std::pair<Precision, const char*> all[] = {
      {Precision::fp32, "none"}, {Precision::bf16, "bf16"}, {Precision::fp16, "fp16"}};
};

// "none" | "bf16" | "fp16"; throws UsageError otherwise.
Precision parse_precision(const std::string& name);
std::string precision_name(Precision precision);
// Throws UsageError when the device cannot run it (fp16 autocast needs CUDA).
void check_precision_supported(Precision precision, const torch::Device& device);

// Autocast on `device` for the lifetime of the object (no-op for fp32). LibTorch 1.13 has no RAII
// guard: this is one, with the same nesting and cache rules as Python's torch.autocast.
class AutocastScope {
 public:
  AutocastScope(Precision precision, const torch::Device& device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  bool previous_enabled_ = false;
  c10::DeviceType device_type_;
  c10::ScalarType previous_dtype_;
};

// Converts 4-D parameters (conv weights) to channels-last in place; nn::Module::to() cannot.
void to_channels_last(torch::nn::Module& module);

struct GradScalerOptions {  // PyTorch's GradScaler defaults
  double init_scale = 65536.0;
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;
};

// Dynamic loss scaling for fp16: scale the loss so small gradients survive in fp16, unscale the
// gradients before the step, skip the step when any gradient is inf/NaN and back the scale off;
// grow it again after `growth_interval` clean steps. Disabled, it is a pass-through.
class GradScaler {
 public:
  explicit GradScaler(bool enabled, GradScalerOptions options = {});

  bool enabled() const { return enabled_; }
  double scale() const { return scale_; }
  int64_t growth_tracker() const { return growth_tracker_; }

  torch::Tensor scale_loss(const torch::Tensor& loss) const;

  // Under data parallelism every rank must skip together: this hook receives the local
  // found-inf flag (float tensor, 0 or 1) and must leave the maximum over ranks in it.
  void set_found_inf_reducer(std::function<void(torch::Tensor&)> reducer) { reduce_found_inf_ = std::move(reducer); }

  // Unscales the gradients in place, checks them, steps the optimizer unless one was inf/NaN,
  // then updates the scale. Returns whether the optimizer stepped.
  bool step(torch::optim::Optimizer& optimizer);

  // Only the unscale + check part (e.g. to clip gradients before stepping); true when finite.
  bool unscale_and_check(torch::optim::Optimizer& optimizer);
  // Adjusts the scale after a step with (found_inf) or without overflow.
  void update(bool found_inf);

  // Puts back the state a checkpoint saved (scale() and growth_tracker()).
  void restore(double scale, int64_t growth_tracker);

 private:
  bool enabled_;
  GradScalerOptions options_;
  double scale_;
  int64_t growth_tracker_ = 0;
  std::function<void(torch::Tensor&)> reduce_found_inf_;
};

}  // namespace histotrain
