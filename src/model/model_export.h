// A trained model as a file other tools run: TorchScript (torch.jit.load(path)(x) in Python or
// C++) and ONNX (onnxruntime, TensorRT, OpenVINO, ...). Both take float RGB in [0, 1], NCHW, at
// the run's image size, any batch, apply the run's input normalisation inside, and return the
// logits `histotrain predict --logits` prints. Both carry torchvision's state-dict names. Both are
// translated from one list of operations (model/inference_ops.h).
#pragma once
#include <array>
#include <string>
#include <vector>

#include <torch/script.h>

#include "model/resnet.h"

namespace histotrain {

struct ExportSettings {
  std::vector<std::string> classes;
  int image_size = 0;
  std::array<float, 3> mean{}, std{};  // the input normalisation, per RGB channel
  double temperature = 0;  // > 0: also the probabilities, softmax(logits / temperature)
};

// A TorchScript archive: forward(x) -> logits, and probabilities(x) -> softmax(logits / T) (T = 1
// without a temperature). Its extra file "histotrain.json" holds the classes, image size,
// normalisation and temperature.
std::string torchscript_bytes(const ResNetImpl& model, const ExportSettings& settings);

// The TorchScript module torchscript_bytes saves, and the same frozen and optimised for CPU
// inference (torch.jit.optimize_for_inference: batch norms folded into the convolutions, oneDNN
// convolutions with their ReLU and addition fused, weights pre-packed). forward(x) as above.
torch::jit::Module torchscript_module(const ResNetImpl& model, const ExportSettings& settings);
torch::jit::Module cpu_inference_module(const ResNetImpl& model, const ExportSettings& settings);

// Whether this build writes ONNX (Debian's libonnx-dev when configured).
bool onnx_export_available();

// An ONNX model (opset 13, checked by ONNX's own checker before it is returned): input "input"
// [batch, 3, S, S], output "logits" [batch, K], and "probabilities" when the settings have a
// temperature; metadata_props hold the classes and the rest. Throws Error without ONNX.
std::string onnx_bytes(const ResNetImpl& model, const ExportSettings& settings);

}  // namespace histotrain
