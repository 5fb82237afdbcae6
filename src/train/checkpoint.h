// A run folder's checkpoint: three files, replaced together (staged, then renamed; see
// checkpoint.cpp). A write that fails (full disk, read-only folder) is a clear error and leaves
// the checkpoint in place untouched. checkpoint.json holds the
// checksums of the other two, checked on every load: a damaged or truncated file is a clear
// error, never weights read as garbage. The checkpoint before the last one is kept in
// RUN/previous (a run folder of its own).
//   model.pt         the model, torch::save(module): loads in Python with torch.jit.load(...)
//                    .state_dict() into torchvision.models.resnetXX(num_classes=K)
//   train_state.pt   everything --resume needs, in one file so it is always consistent: model,
//                    optimizer, loss-scaler and RNG state, and the step they belong to
//   checkpoint.json  arch, classes, image size, epoch, step, config, last metrics; written last,
//                    so it only ever describes files that are already in place
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "model/resnet.h"
#include "train/amp.h"

namespace histotrain {

// Accepts a run folder or a path to its model.pt; returns the folder.
std::filesystem::path run_folder(const std::string& checkpoint_arg);

// With `average` (--ema), model.pt holds the averaged weights, the ones that were validated, and
// train_state.pt holds both.
void save_checkpoint(const std::filesystem::path& run, ResNet& model, const torch::optim::Optimizer& optimizer,
                     const GradScaler& scaler, const nlohmann::json& meta, ResNet* average = nullptr);

// Whether `run` holds a checkpoint (or one complete but not yet renamed into place).
bool has_checkpoint(const std::filesystem::path& run);

// checkpoint.json of a run; throws Error when there is none.
nlohmann::json read_checkpoint_meta(const std::filesystem::path& run);

// Builds the model the checkpoint describes and loads its weights.
ResNet load_model(const std::filesystem::path& run, const nlohmann::json& meta);

// A trained model ready for inference: what eval and predict need from a run folder.
struct TrainedModel {
  std::filesystem::path run;
  std::vector<std::string> classes;
  int image_size = 0;
  Precision precision = Precision::fp32;  // as trained, unless overridden
  bool channels_last = false;             // as trained
  ResNet model{nullptr};                  // on the requested device, in eval mode
};
// `amp`: "" keeps the training precision, else none | bf16 | fp16.
TrainedModel open_trained_model(const std::string& checkpoint_arg, torch::Device device, const std::string& amp = "");

// Restores model, optimizer, scaler and RNG state from train_state.pt; throws Error when it is
// not from meta's step.
// `average`: loaded when the state holds one; returns whether it did.
bool load_training_state(const std::filesystem::path& run, ResNet& model, torch::optim::Optimizer& optimizer,
                         GradScaler& scaler, int64_t step, ResNet* average = nullptr);

}  // namespace histotrain
