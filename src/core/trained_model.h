// A run folder opened for use: its model on a device in eval mode, with everything eval, predict,
// export and slide prediction need to feed it as it was trained (classes, size, precision,
// layout, normalisation, temperature, the scale of its tiles).
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/amp.h"
#include "data/batches.h"
#include "data/stain_normalization.h"
#include "model/resnet.h"

namespace histotrain {

// checkpoint.json's "normalization": {"mean": [r, g, b], "std": [r, g, b]}, pixel values in [0, 1].
nlohmann::json normalization_json(const Normalization& normalization);
// ImageNet's when the checkpoint names none (checkpoints written before --normalize).
Normalization normalization_of(const nlohmann::json& meta);

// A trained model ready for inference: what eval and predict need from a run folder.
struct TrainedModel {
  std::filesystem::path run;
  std::vector<std::string> classes;
  int image_size = 0;
  Precision precision = Precision::fp32;  // as trained, unless overridden
  bool channels_last = false;             // as trained
  double temperature = 0;                 // fitted on the validation split (core/calibration.h); 0: none
  Normalization normalization;            // as trained
  StainReference stain;                   // tiles are stain-normalised to it first (method none: not)
  double input_mpp = 0;                   // microns per input pixel, when its tiles said (0: unknown)
  ResNet model{nullptr};                  // on the requested device, in eval mode
};
// Normalises each of `count` uint8 RGB tiles of `trained`'s size at `tiles` to its stain reference
// (nothing without one): what eval's tile cache holds, done to tiles that never enter a cache.
void normalize_tile_stains(const TrainedModel& trained, uint8_t* tiles, int64_t count);

// `amp`: "" keeps the training precision, else none | bf16 | fp16.
TrainedModel open_trained_model(const std::string& checkpoint_arg, torch::Device device, const std::string& amp = "",
                                bool trust_torchscript = false);

}  // namespace histotrain
