#include "model/pytorch_weights.h"

#include <cstring>
#include <map>

#include "model/state_dict_pickle.h"
#include "model/stored_zip.h"
#include "util/errors.h"
#include "util/files.h"

namespace histotrain {

namespace {

constexpr uint64_t kMaxPickleBytes = uint64_t{64} << 20;  // a ResNet-152's is about 100 KB

// The archive's folder: the one X with a record X/data.pkl (torch.save names it after the file,
// or "archive").
std::string archive_folder(const StoredZip& zip, const std::string& source) {
  std::string folder;
  for (const auto& record : zip.records()) {
    const std::string& name = record.first;
    const size_t slash = name.find('/');
    if (slash == std::string::npos || name.substr(slash) != "/data.pkl") continue;
    if (!folder.empty()) throw Error(source + " holds more than one data.pkl");
    folder = name.substr(0, slash);
  }
  if (folder.empty()) throw Error(source + " is a zip file without data.pkl: not written by torch.save");
  if (zip.has(folder + "/constants.pkl") || zip.has(folder + "/code/") ||
      std::any_of(zip.records().begin(), zip.records().end(),
                  [&](const auto& r) { return r.first.rfind(folder + "/code/", 0) == 0; }))
    throw Error(source + " is a TorchScript archive, which holds code; histotrain does not run it. In Python, save "
                "the weights as data: torch.save(model.state_dict(), 'weights.pth')");
  if (zip.has(folder + "/byteorder") && zip.record(folder + "/byteorder") != "little")
    throw Error(source + " was written on a big-endian machine; histotrain reads little-endian files");
  return folder;
}

// A storage record's elements, as a flat tensor that owns a copy of them.
torch::Tensor read_storage(const StoredZip& zip, const std::string& folder, const PickledTensor& t,
                           const std::string& source) {
  const std::string_view bytes = zip.record(folder + "/data/" + t.storage);
  const uint64_t needed = static_cast<uint64_t>(t.storage_elements) * c10::elementSize(t.dtype);
  if (bytes.size() < needed)
    throw Error(source + ": storage '" + t.storage + "' holds " + std::to_string(bytes.size()) + " bytes, its " +
                std::to_string(t.storage_elements) + " elements need " + std::to_string(needed));
  torch::Tensor flat = torch::empty({t.storage_elements}, torch::TensorOptions().dtype(t.dtype));
  if (needed > 0) std::memcpy(flat.data_ptr(), bytes.data(), needed);
  return flat;
}

}  // namespace

bool looks_like_legacy_torch_save(std::string_view bytes) {
  // The legacy format starts with a pickled magic number: PROTO 2, LONG1 of 10 bytes.
  return bytes.size() >= 3 && bytes.substr(0, 3) == std::string_view("\x80\x02\x8a", 3);
}

NamedTensors parse_pytorch_state_dict(std::string_view bytes, const std::string& source) {
  if (looks_like_legacy_torch_save(bytes))
    throw Error(source + " is in PyTorch's legacy format (before 1.6, or _use_new_zipfile_serialization=False); "
                "save it again in Python with torch.save(state_dict, 'weights.pth')");
  const StoredZip zip(bytes, source);
  const std::string folder = archive_folder(zip, source);
  const std::string_view pickle = zip.record(folder + "/data.pkl");
  if (pickle.size() > kMaxPickleBytes) throw Error(source + ": its data.pkl is larger than any state dict's");
  const PickledStateDict pickled = unpickle_state_dict(pickle, source);
  std::map<std::string, torch::Tensor> storages;  // tensors may share one
  NamedTensors tensors;
  for (const auto& [name, t] : pickled) {
    auto found = storages.find(t.storage);
    if (found == storages.end()) found = storages.emplace(t.storage, read_storage(zip, folder, t, source)).first;
    const torch::Tensor& flat = found->second;
    if (flat.scalar_type() != t.dtype || flat.numel() != t.storage_elements)
      throw Error(source + ": storage '" + t.storage + "' is described in two different ways");
    tensors.emplace_back(name, flat.as_strided(t.sizes, t.strides, t.offset).clone(torch::MemoryFormat::Contiguous));
  }
  return tensors;
}

NamedTensors read_pytorch_state_dict(const std::filesystem::path& path, uint64_t max_bytes) {
  const std::string bytes = read_regular_file(path, max_bytes);
  return parse_pytorch_state_dict(bytes, path.string());
}

}  // namespace histotrain
