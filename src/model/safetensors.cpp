#include "model/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <sstream>

#include "util/errors.h"
#include "util/files.h"
#include "util/json_file.h"

namespace histotrain {

namespace {

static_assert(sizeof(void*) == 8, "safetensors offsets are 64-bit");

// The format's header is JSON of a few kilobytes per hundred tensors; anything near this bound
// is not a weights file.
constexpr uint64_t kMaxHeaderBytes = uint64_t{16} << 20;

struct DtypeName {
  const char* name;
  torch::ScalarType type;
};
const DtypeName kDtypes[] = {{"F64", torch::kFloat64}, {"F32", torch::kFloat32}, {"F16", torch::kFloat16},
                             {"BF16", torch::kBFloat16}, {"I64", torch::kInt64},  {"I32", torch::kInt32},
                             {"I16", torch::kInt16},     {"I8", torch::kInt8},    {"U8", torch::kUInt8},
                             {"BOOL", torch::kBool}};

const char* dtype_name(torch::ScalarType type) {
  for (const auto& d : kDtypes)
    if (d.type == type) return d.name;
  throw Error(std::string("safetensors cannot hold tensors of type ") + c10::toString(type));
}

bool dtype_from_name(const std::string& name, torch::ScalarType& type) {
  for (const auto& d : kDtypes)
    if (name == d.name) {
      type = d.type;
      return true;
    }
  return false;
}

std::string shape_text(c10::IntArrayRef shape) {
  std::ostringstream text;
  text << shape;
  return text.str();
}

// x86-64 and AArch64 are little-endian, as the format is: bytes are copied as they are.
uint64_t read_le64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

std::string le64(uint64_t v) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return bytes;
}

// One header entry checked against the data it claims; `data_size` bounds every offset.
struct Entry {
  std::string name;
  torch::ScalarType type;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

Entry parse_entry(const std::string& name, const nlohmann::json& info, uint64_t data_size, const std::string& source) {
  auto bad = [&](const std::string& why) { return Error(source + ": tensor '" + name + "' " + why); };
  if (!info.is_object()) throw bad("is not described by an object");
  Entry entry{name, torch::kFloat32, {}, 0, 0};
  const auto dtype = info.find("dtype");
  if (dtype == info.end() || !dtype->is_string() || !dtype_from_name(dtype->get<std::string>(), entry.type))
    throw bad("has no dtype histotrain reads (F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)");
  const auto shape = info.find("shape");
  if (shape == info.end() || !shape->is_array() || shape->size() > 8) throw bad("has no shape of at most 8 sizes");
  uint64_t elements = 1;
  for (const auto& size : *shape) {
    if (!size.is_number_unsigned()) throw bad("has a size in its shape that is not a whole number >= 0");
    const uint64_t s = size.get<uint64_t>();
    if (s > data_size || (s != 0 && elements > data_size / s)) throw bad("claims more elements than the file holds");
    elements *= s;
    entry.shape.push_back(static_cast<int64_t>(s));
  }
  const auto offsets = info.find("data_offsets");
  if (offsets == info.end() || !offsets->is_array() || offsets->size() != 2 || !(*offsets)[0].is_number_unsigned() ||
      !(*offsets)[1].is_number_unsigned())
    throw bad("has no data_offsets [begin, end]");
  entry.begin = (*offsets)[0].get<uint64_t>();
  entry.end = (*offsets)[1].get<uint64_t>();
  if (entry.begin > entry.end || entry.end > data_size) throw bad("has data_offsets outside the file");
  const uint64_t element_size = c10::elementSize(entry.type);
  if (elements > data_size / element_size || entry.end - entry.begin != elements * element_size)
    throw bad("has " + std::to_string(entry.end - entry.begin) + " bytes for shape " + shape_text(entry.shape));
  return entry;
}

// The format leaves no byte of the data unclaimed and claims none twice.
void check_data_tiles_exactly(std::vector<Entry>& entries, uint64_t data_size, const std::string& source) {
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  uint64_t next = 0;
  for (const Entry& e : entries) {
    if (e.begin != next)
      throw Error(source + ": tensor '" + e.name + "' " + (e.begin < next ? "overlaps another" : "leaves a gap before it"));
    next = e.end;
  }
  if (next != data_size) throw Error(source + ": " + std::to_string(data_size - next) + " bytes at the end belong to no tensor");
}

}  // namespace

std::string safetensors_bytes(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> contiguous;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__" || header.contains(name)) throw Error("safetensors: tensor name '" + name + "' is used twice");
    torch::Tensor cpu = tensor.detach().to(torch::kCPU).contiguous();
    const uint64_t size = static_cast<uint64_t>(cpu.numel()) * cpu.element_size();
    header[name] = {{"dtype", dtype_name(cpu.scalar_type())}, {"shape", cpu.sizes().vec()}, {"data_offsets", {offset, offset + size}}};
    offset += size;
    contiguous.push_back(std::move(cpu));
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  std::string bytes = le64(text.size()) + text;
  bytes.reserve(bytes.size() + offset);
  for (const torch::Tensor& t : contiguous)
    bytes.append(static_cast<const char*>(t.data_ptr()), static_cast<size_t>(t.numel()) * t.element_size());
  return bytes;
}

Safetensors parse_safetensors(const std::string& bytes, const std::string& source) {
  if (bytes.size() < 8) throw Error(source + " is not a safetensors file (" + std::to_string(bytes.size()) + " bytes)");
  const uint64_t header_size = read_le64(bytes.data());
  if (header_size > kMaxHeaderBytes || header_size > bytes.size() - 8)
    throw Error(source + " is not a safetensors file or is truncated (its header claims " + std::to_string(header_size) +
                " bytes)");
  const auto header = parse_json_or_null(bytes.substr(8, static_cast<size_t>(header_size)));
  if (!header.is_object()) throw Error(source + ": the safetensors header is not a JSON object");
  const uint64_t data_size = bytes.size() - 8 - header_size;
  const char* data = bytes.data() + 8 + header_size;

  Safetensors file;
  std::vector<Entry> entries;
  for (const auto& [name, info] : header.items()) {
    if (name != "__metadata__") {
      entries.push_back(parse_entry(name, info, data_size, source));
      continue;
    }
    if (!info.is_object()) throw Error(source + ": __metadata__ is not an object");
    for (const auto& [key, value] : info.items()) {
      if (!value.is_string()) throw Error(source + ": __metadata__ '" + key + "' is not a string");
      file.metadata[key] = value.get<std::string>();
    }
  }
  check_data_tiles_exactly(entries, data_size, source);
  for (const Entry& e : entries) {
    torch::Tensor t = torch::empty(e.shape, torch::TensorOptions().dtype(e.type));
    if (e.end > e.begin) std::memcpy(t.data_ptr(), data + e.begin, e.end - e.begin);
    file.tensors.emplace(e.name, std::move(t));
  }
  return file;
}

Safetensors read_safetensors(const std::filesystem::path& path, uint64_t max_bytes) {
  return parse_safetensors(read_regular_file(path, max_bytes), path.string());
}

NamedTensors module_tensors(const torch::nn::Module& module, const std::string& prefix) {
  NamedTensors named;
  for (const auto& item : module.named_parameters(true)) named.emplace_back(prefix + item.key(), item.value());
  for (const auto& item : module.named_buffers(true)) named.emplace_back(prefix + item.key(), item.value());
  return named;
}

void load_module_tensors(torch::nn::Module& module, const Safetensors& file, const std::string& source,
                         const std::string& prefix) {
  const NamedTensors expected = module_tensors(module, prefix);
  std::map<std::string, const torch::Tensor*> wanted;
  for (const auto& [name, tensor] : expected) {
    const auto found = file.tensors.find(name);
    if (found == file.tensors.end()) throw Error(source + " has no tensor '" + name + "' (is it from another model?)");
    const torch::Tensor& stored = found->second;
    if (stored.scalar_type() != tensor.scalar_type())
      throw Error(source + ": tensor '" + name + "' is " + dtype_name(stored.scalar_type()) + ", the model's is " +
                  dtype_name(tensor.scalar_type()));
    if (stored.sizes() != tensor.sizes())
      throw Error(source + ": tensor '" + name + "' has shape " + shape_text(stored.sizes()) + ", the model expects " +
                  shape_text(tensor.sizes()) + " (another architecture or number of classes?)");
    wanted[name] = &stored;
  }
  for (const auto& [name, tensor] : file.tensors)
    if (name.compare(0, prefix.size(), prefix) == 0 && !wanted.count(name))
      throw Error(source + " has a tensor '" + name + "' this model does not have (is it from another model?)");
  torch::NoGradGuard no_grad;
  for (const auto& [name, tensor] : expected) tensor.copy_(*wanted.at(name));
}

}  // namespace histotrain
