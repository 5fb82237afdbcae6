// train --init: start from someone else's weights instead of random ones, the baseline of
// pathology papers (an ImageNet ResNet, fine-tuned). The source is a state dict saved by Python's
// torch.save (torchvision's and timm's ResNets share the names histotrain uses), a .safetensors
// file, or another histotrain run folder; the format is told by the file's first bytes. Nothing in
// any of them is executed (model/pytorch_weights.h).
//
// Every tensor of the model must be in the file with the same shape, and the file may hold no
// other, except the classifier head: when its class count differs (1,000 ImageNet classes, 5
// here), or the file holds no head at all (a backbone), the model keeps its freshly initialised
// head, and the report says so. Anything else is
// one Error listing every mismatch, and naming the architecture the file holds when it can tell.
#pragma once
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "model/resnet.h"
#include "model/safetensors.h"

namespace histotrain {

struct InitialWeights {
  std::string source;        // as given
  std::string format;        // "torch.save", "safetensors" or "histotrain run"
  std::string stripped_prefix;  // "module." and the like, taken off every name ("" when none)
  int64_t tensors = 0;       // copied into the model
  int64_t file_classes = 0;  // the file's head's outputs, when the head was replaced (0: it was loaded)
  bool head_in_file = true;  // false: a backbone alone (no fc), the head starts from random weights

  std::string describe() const;  // for the log
  nlohmann::json to_json() const;  // for summary.json and checkpoint.json
};

// A weights file or run folder, read: its tensors by name, wrapper prefixes taken off.
struct WeightsFile {
  std::string source, format, stripped_prefix;
  NamedTensors tensors;
};
// Throws Error when `source` is missing, unreadable or holds anything but tensors: train reads it
// before minutes of decoding, and loads it once the class count is known.
WeightsFile read_weights_file(const std::string& source);

// Copies the file's tensors into `model` (on the CPU, before it moves to its device).
InitialWeights load_initial_weights(ResNet& model, const WeightsFile& file);
InitialWeights load_initial_weights(ResNet& model, const std::string& source);

// "resnet50" when the names are those of one of supported_archs(); "" otherwise.
std::string architecture_of(const NamedTensors& tensors);

}  // namespace histotrain
