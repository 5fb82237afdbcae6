#include "core/fast_inference.h"

#include <torch/csrc/jit/runtime/graph_executor.h>

#include "core/amp.h"
#include "data/batches.h"

namespace histotrain {

ExportSettings export_settings(const TrainedModel& trained, bool probabilities) {
  ExportSettings s;
  s.classes = trained.classes;
  s.image_size = trained.image_size;
  s.mean = trained.normalization.mean;
  s.std = trained.normalization.std;
  // The probabilities output divides by the temperature fitted on validation, where there is one.
  s.temperature = probabilities ? (trained.temperature > 0 ? trained.temperature : 1.0) : 0;
  return s;
}

FastInference::FastInference(TrainedModel& trained, const torch::Device& device, bool frozen)
    : trained_(trained), device_(device) {
  if (!frozen || !device.is_cpu() || trained.precision != Precision::fp32) return;
  try {
    frozen_ = cpu_inference_module(*trained.model, export_settings(trained, false));
  } catch (const c10::Error&) {
    frozen_.reset();  // a LibTorch without the optimisation passes: the eager model computes the same
  }
}

torch::Tensor FastInference::logits(const torch::Tensor& nhwc_uint8) {
  torch::NoGradGuard no_grad;
  if (frozen_) {
    // The module takes float RGB in [0, 1], NCHW, and normalises inside.
    const torch::Tensor x = nhwc_uint8.permute({0, 3, 1, 2}).to(torch::kFloat32).div_(255.0f).contiguous();
    // The graph is already optimised: the executor's profiling runs (and a new specialisation
    // for each batch size) would only add time — measured 1.7x slower at 64 px on 282 tiles.
    torch::jit::GraphOptimizerEnabledGuard as_frozen(false);
    return frozen_->forward({x}).toTensor().to(torch::kFloat32);
  }
  const auto format = trained_.channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
  AutocastScope autocast(trained_.precision, device_);
  const torch::Tensor logits =
      trained_.model->forward(normalize_uint8_nhwc(nhwc_uint8.to(device_), format, trained_.normalization));
  return logits.to(torch::kFloat32).to(torch::kCPU);
}

std::string FastInference::path() const {
  return frozen_ ? "frozen TorchScript, oneDNN (fp32)" : "eager, " + precision_name(trained_.precision);
}

}  // namespace histotrain
