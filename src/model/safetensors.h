// Weights as data: the safetensors format (an 8-byte little-endian header length, a JSON header
// naming each tensor's dtype, shape and byte range, then the raw bytes). Unlike a TorchScript
// archive (model.pt), nothing in such a file can run when it is read, and every field is checked
// before a byte is copied: the header's size, each tensor's dtype, shape, byte range (inside the
// file, no overlaps or gaps), and, when loaded into a module, each name and shape against the
// module's own. Python reads these files with the `safetensors` package, or with json + struct +
// torch.frombuffer.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace histotrain {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

struct Safetensors {
  std::map<std::string, torch::Tensor> tensors;  // CPU tensors that own their memory
  std::map<std::string, std::string> metadata;   // the header's "__metadata__" (strings only)
};

// The file's bytes for `tensors` (copied to the CPU, contiguous, in the given order).
std::string safetensors_bytes(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata = {});

// Parses a whole file's bytes; throws Error naming `source` and what is wrong.
Safetensors parse_safetensors(const std::string& bytes, const std::string& source);

// Reads and parses a regular file of at most `max_bytes`.
Safetensors read_safetensors(const std::filesystem::path& path, uint64_t max_bytes = uint64_t{8} << 30);

// A module's parameters and buffers under their full names ("layer1.0.conv1.weight"), the
// names torchvision's state_dict() uses.
NamedTensors module_tensors(const torch::nn::Module& module, const std::string& prefix = "");

// Copies `file`'s tensors named prefix + NAME into the module's parameters and buffers. Every
// one of the module's names must be there with the same dtype and shape, and no other name
// with that prefix may be: a 1000-class head in a 5-class model, or a 3x3 first convolution, is
// an Error naming the tensor, the file's shape and the model's, before anything is copied.
void load_module_tensors(torch::nn::Module& module, const Safetensors& file, const std::string& source,
                         const std::string& prefix = "");

}  // namespace histotrain
