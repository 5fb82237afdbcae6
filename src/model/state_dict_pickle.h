// The pickle inside a torch.save file (data.pkl), read as data. Python's pickle is a small stack
// machine whose GLOBAL and REDUCE opcodes can call any function; a state dict needs only a few:
// OrderedDict, torch._utils._rebuild_tensor_v2, _rebuild_parameter and the storage types. This
// reader implements the opcodes of protocols 2 to 4 that hold numbers, strings, tuples, lists
// and dicts, and allows exactly those callables, applied here in C++: nothing in the file can
// run. Containers cannot be changed once inside another (no cycles), nesting is limited, every
// length is checked against the bytes left. What it returns describes tensors; their bytes are
// read by model/pytorch_weights.h.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace histotrain {

// A tensor as the pickle describes it: a view (offset, sizes, strides, in elements) of a storage
// whose bytes are the record "<archive>/data/<storage>".
struct PickledTensor {
  std::string storage;
  torch::ScalarType dtype = torch::kFloat32;
  int64_t storage_elements = 0;
  int64_t offset = 0;
  std::vector<int64_t> sizes, strides;
};

using PickledStateDict = std::vector<std::pair<std::string, PickledTensor>>;

// The tensors of the state dict `pickle` holds, in its order: the top-level dict, or the dict
// under its "state_dict" or "model" key (training checkpoints). Throws Error naming `source` and
// what the file asks for when it is anything else.
PickledStateDict unpickle_state_dict(std::string_view pickle, const std::string& source);

}  // namespace histotrain
