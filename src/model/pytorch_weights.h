// State dicts written by Python's torch.save (the zip format): torchvision's and timm's pretrained
// ResNets, anyone's fine-tuned weights. Read as data by model/stored_zip.h and
// model/state_dict_pickle.h, never by executing the pickle: a file that holds code (a TorchScript
// archive, a pickled model object) is refused with what to save instead.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "model/safetensors.h"

namespace histotrain {

// The tensors of `bytes`, a whole torch.save file, by name in the file's order (CPU, contiguous,
// each owning its memory). Throws Error naming `source` and what is wrong.
NamedTensors parse_pytorch_state_dict(std::string_view bytes, const std::string& source);

// Reads a regular file of at most `max_bytes` and parses it.
NamedTensors read_pytorch_state_dict(const std::filesystem::path& path, uint64_t max_bytes = uint64_t{8} << 30);

// Whether `bytes` starts like a pickle of PyTorch's legacy (before 1.6) format.
bool looks_like_legacy_torch_save(std::string_view bytes);

}  // namespace histotrain
