// A trained model's logits for inference, as fast as the device allows: on a CPU in fp32, the
// model frozen into a TorchScript module that LibTorch optimises for inference (batch norms
// folded into the convolutions, oneDNN convolutions with their ReLU and addition fused, weights
// pre-packed); elsewhere, and in bf16 or fp16, the eager model under autocast. Both compute the
// same function (tests/test_slides.cpp compares them).
#pragma once
#include <torch/torch.h>

#include <optional>
#include <string>

#include "core/checkpoint.h"
#include "model/model_export.h"

namespace histotrain {

// What an exported or frozen module needs from a run: classes, size, normalisation, and with
// `probabilities` the temperature of the probabilities output.
ExportSettings export_settings(const TrainedModel& trained, bool probabilities);

class FastInference {
 public:
  // `frozen`: use the frozen module where it applies (false: always the eager model).
  FastInference(TrainedModel& trained, const torch::Device& device, bool frozen = true);

  // float32 logits [N, classes] on the CPU, of uint8 RGB tiles [N, S, S, 3] at the model's size.
  torch::Tensor logits(const torch::Tensor& nhwc_uint8);

  // "frozen TorchScript (oneDNN)" or "eager, <precision>": for summaries.
  std::string path() const;

 private:
  TrainedModel& trained_;
  torch::Device device_;
  std::optional<torch::jit::Module> frozen_;
};

}  // namespace histotrain
