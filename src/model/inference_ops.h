// A trained ResNet's inference as a plain list of operations over named values, the one
// description both exporters (model/model_export.h: TorchScript and ONNX) translate. Each op names
// the module whose weights it uses by torchvision's names ("layer2.0.downsample.0"), so the
// exported files carry the same state-dict names as the run's model.safetensors.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/resnet.h"

namespace histotrain {

struct InferenceOp {
  enum class Kind {
    normalize,    // (x - mean) / std per channel: the run's input normalisation
    conv,         // module.weight, no bias; square kernel, stride, padding
    batch_norm,   // module.{weight, bias, running_mean, running_var}, eps 1e-5, inference
    relu,
    max_pool,     // kernel, stride, padding
    add,          // inputs[0] + inputs[1]
    global_pool,  // mean over H and W, flattened to [N, C]
    linear,       // module.{weight, bias}
  };
  Kind kind;
  std::vector<std::string> inputs;
  std::string output;
  std::string module;  // whose weights, for conv, batch_norm and linear
  int64_t kernel = 0, stride = 1, padding = 0;
};

constexpr double kBatchNormEpsilon = 1e-5;

// From "input" (float RGB in [0, 1], NCHW) to "logits": the normalisation, then the network as
// ResNetImpl::forward computes it in eval mode.
std::vector<InferenceOp> resnet_inference_ops(const ResNetImpl& model);

}  // namespace histotrain
