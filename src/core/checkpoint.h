// A run folder's checkpoint: files replaced together (staged, then renamed; see checkpoint.cpp).
// A write that fails (full disk, read-only folder) is a clear error and leaves the checkpoint in
// place untouched. checkpoint.json holds the checksums of the others, checked on every load (a
// checkpoint.json without them is refused): a damaged or truncated file is a clear error, never
// weights read as garbage. While a run trains, the checkpoint before the last one is kept in
// RUN/previous (a run folder of its own); a run that finishes checks its last checkpoint and
// removes it, so a finished run holds one copy of each file (about 3x the weights' bytes).
//   model.safetensors        the model's weights under torchvision's names: data, not code (see
//                            model/safetensors.h); what eval and predict read: the last validated
//                            weights, or the best validation's (train --keep best)
//   train_state.safetensors  everything --resume needs, in one file so it is always consistent:
//                            model, optimizer, loss-scaler and RNG state, and the step they belong to
// A model.pt to run elsewhere is written by `histotrain export` (model/model_export.h).
//   checkpoint.json          arch, classes, image size, epoch, step, config, last metrics, the
//                            calibration's temperature (fitted on the validation split), the
//                            input normalisation (--normalize); written
//                            last, so it only ever describes files that are already in place
// Checkpoints of older versions (model.pt and train_state.pt only) load with --trust-checkpoint.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "core/amp.h"
#include "core/trained_model.h"  // what most readers of a checkpoint want
#include "data/batches.h"
#include "model/resnet.h"
#include "model/safetensors.h"

namespace histotrain {

// Accepts a run folder or a path to a file in it; returns the folder.
std::filesystem::path run_folder(const std::string& checkpoint_arg);

// With `average` (--ema), model.safetensors holds the averaged weights, the ones that were
// validated, and train_state.safetensors holds both.
// `reducer_state`: the gradient reducer's (PowerSGD's factors and error feedback), saved in
// train_state.safetensors under "reducer.". `new_weights` false: model.safetensors keeps the
// weights it holds (train --keep best between improvements).
void save_checkpoint(const std::filesystem::path& run, ResNet& model, torch::optim::SGD& optimizer,
                     const GradScaler& scaler, const nlohmann::json& meta, ResNet* average = nullptr,
                     const NamedTensors& reducer_state = {}, bool new_weights = true);

// A run that finished: its checkpoint's files are checked against their checksums, then
// RUN/previous goes (the checkpoint before the last is no longer needed). Throws Error when a
// file does not check, and keeps previous/ then.
void finish_run_folder(const std::filesystem::path& run);

// Whether `run` holds a checkpoint (or one complete but not yet renamed into place).
bool has_checkpoint(const std::filesystem::path& run);

// checkpoint.json of a run, its fields checked; throws Error when there is none or it is damaged.
nlohmann::json read_checkpoint_meta(const std::filesystem::path& run);

// Builds the model the checkpoint describes and loads its weights from model.safetensors, each
// tensor's name and shape checked; from a TorchScript model.pt only with `trust_torchscript`.
ResNet load_model(const std::filesystem::path& run, const nlohmann::json& meta, bool trust_torchscript = false);

// Restores model, optimizer, scaler and RNG state from train_state.safetensors (an older
// train_state.pt only with `trust_torchscript`); throws Error when it is not from meta's step.
// `average`: loaded when the state holds one; returns whether it did. `reducer_state`: receives
// what save_checkpoint's did.
bool load_training_state(const std::filesystem::path& run, ResNet& model, torch::optim::SGD& optimizer,
                         GradScaler& scaler, int64_t step, ResNet* average = nullptr, bool trust_torchscript = false,
                         NamedTensors* reducer_state = nullptr);

}  // namespace histotrain
