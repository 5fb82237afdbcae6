#include "core/initial_weights.h"

#include <map>
#include <sstream>

#include "core/checkpoint.h"
#include "model/pytorch_weights.h"
#include "model/stored_zip.h"
#include "util/errors.h"
#include "util/files.h"

namespace histotrain {

namespace {

namespace fs = std::filesystem;

// ResNet-50 with its optimizer state is 300 MB, a ResNet-152 training checkpoint under 1 GB: a
// larger file is refused before it is read (a sparse 5 GB file was read whole).
constexpr uint64_t kMaxWeightsFile = uint64_t{2} << 30;
const char* const kHead[] = {"fc.weight", "fc.bias"};

std::string shape_of(const torch::Tensor& t) {
  std::ostringstream text;
  text << t.sizes();
  return text.str();
}

bool is_head(const std::string& name) { return name == kHead[0] || name == kHead[1]; }

// Prefixes that wrappers put before every name: DataParallel's "module.", torch.compile's
// "_orig_mod.", a Lightning module's "model.". Taken off while every name has one.
std::string strip_wrapper_prefixes(NamedTensors& tensors) {
  std::string stripped;
  for (bool again = true; again && !tensors.empty();) {
    again = false;
    for (const std::string prefix : {"module.", "_orig_mod.", "model."}) {
      const bool all = std::all_of(tensors.begin(), tensors.end(),
                                   [&](const auto& t) { return t.first.rfind(prefix, 0) == 0; });
      if (!all) continue;
      for (auto& t : tensors) t.first.erase(0, prefix.size());
      stripped += prefix;
      again = true;
    }
  }
  return stripped;
}

// safetensors: an 8-byte little-endian header size, then a JSON object.
bool looks_like_safetensors(const std::string& bytes) { return bytes.size() > 9 && bytes[8] == '{'; }

// The mismatches between the file and the model, by kind; the head's shape is checked apart.
struct Mismatches {
  std::vector<std::string> missing, extra, different;  // from the file; only in the file; other shape or kind
  bool any() const { return !missing.empty() || !extra.empty() || !different.empty(); }
};

Mismatches mismatches(const std::map<std::string, torch::Tensor>& file, const NamedTensors& model) {
  Mismatches m;
  std::map<std::string, bool> in_model;
  for (const auto& [name, tensor] : model) {
    in_model[name] = true;
    const auto found = file.find(name);
    if (found == file.end()) {
      if (is_head(name) && !file.count(kHead[0]) && !file.count(kHead[1])) continue;  // a backbone alone
      m.missing.push_back(name + " " + shape_of(tensor));
      continue;
    }
    const torch::Tensor& stored = found->second;
    if (stored.is_floating_point() != tensor.is_floating_point())
      m.different.push_back(name + ": the file's is " + std::string(c10::toString(stored.scalar_type())) +
                            ", the model's " + c10::toString(tensor.scalar_type()));
    else if (stored.sizes() != tensor.sizes() && !is_head(name))
      m.different.push_back(name + ": the file's shape is " + shape_of(stored) + ", the model's " + shape_of(tensor));
  }
  for (const auto& [name, tensor] : file)
    if (!in_model.count(name)) m.extra.push_back(name + " " + shape_of(tensor));
  return m;
}

// "\n  3 missing from the file: a, b, c": at most 8 named.
std::string listed(const std::string& what, const std::vector<std::string>& names) {
  if (names.empty()) return "";
  std::string text = "\n  " + std::to_string(names.size()) + " " + what + ":";
  for (size_t k = 0; k < names.size() && k < 8; ++k) text += "\n    " + names[k];
  if (names.size() > 8) text += "\n    ... and " + std::to_string(names.size() - 8) + " more";
  return text;
}

// The head's shapes differ only in the class count (the features must agree).
bool head_replaceable(const torch::Tensor& file_weight, const torch::Tensor& file_bias, const torch::Tensor& weight) {
  return file_weight.dim() == 2 && file_bias.dim() == 1 && file_weight.size(1) == weight.size(1) &&
         file_bias.size(0) == file_weight.size(0);
}

}  // namespace

std::string InitialWeights::describe() const {
  std::string line = "--init " + source + " (" + format + "): " + std::to_string(tensors) + " tensors loaded";
  if (!stripped_prefix.empty()) line += " (names without their '" + stripped_prefix + "' prefix)";
  if (file_classes > 0)
    line += "; the file's head has " + std::to_string(file_classes) +
            " outputs, so this run's classifier head (fc) starts from random weights";
  if (!head_in_file) line += "; the file holds no classifier head (fc), so this run's starts from random weights";
  return line;
}

nlohmann::json InitialWeights::to_json() const {
  return {{"source", source}, {"format", format}, {"tensors", tensors}, {"head_replaced", file_classes > 0 || !head_in_file},
          {"file_classes", file_classes}, {"stripped_prefix", stripped_prefix}};
}

std::string architecture_of(const NamedTensors& tensors) {
  std::map<std::string, bool> names;
  for (const auto& t : tensors) names[t.first] = true;
  int blocks[4] = {0, 0, 0, 0};
  for (int layer = 0; layer < 4; ++layer)
    while (names.count("layer" + std::to_string(layer + 1) + "." + std::to_string(blocks[layer]) + ".conv1.weight"))
      ++blocks[layer];
  const bool bottleneck = names.count("layer1.0.conv3.weight") > 0;
  const std::string counts = std::to_string(blocks[0]) + std::to_string(blocks[1]) + std::to_string(blocks[2]) +
                             std::to_string(blocks[3]);
  if (counts == "1111" && !bottleneck) return "resnet10";
  if (counts == "2222" && !bottleneck) return "resnet18";
  if (counts == "3463") return bottleneck ? "resnet50" : "resnet34";
  return "";
}

namespace {

NamedTensors read_weights(const fs::path& source, std::string& format) {
  std::error_code error;
  if (fs::is_directory(source, error)) {
    format = "histotrain run";
    const nlohmann::json meta = read_checkpoint_meta(source);
    ResNet model = load_model(source, meta);
    NamedTensors tensors;
    for (auto& [name, tensor] : module_tensors(*model)) tensors.emplace_back(name, tensor.detach().clone());
    return tensors;
  }
  if (!fs::exists(source, error)) throw Error("--init: '" + source.string() + "' does not exist");
  const std::string bytes = read_regular_file(source, kMaxWeightsFile);
  if (looks_like_safetensors(bytes)) {
    format = "safetensors";
    Safetensors file = parse_safetensors(bytes, source.string());
    return NamedTensors(file.tensors.begin(), file.tensors.end());
  }
  format = "torch.save";
  if (looks_like_zip(bytes) || looks_like_legacy_torch_save(bytes)) return parse_pytorch_state_dict(bytes, source.string());
  throw Error("--init: " + source.string() +
              " is neither a torch.save file, a .safetensors file nor a histotrain run folder");
}

}  // namespace

WeightsFile read_weights_file(const std::string& source) {
  WeightsFile file;
  file.source = source;
  file.tensors = read_weights(source, file.format);
  file.stripped_prefix = strip_wrapper_prefixes(file.tensors);
  return file;
}

InitialWeights load_initial_weights(ResNet& model, const std::string& source) {
  return load_initial_weights(model, read_weights_file(source));
}

InitialWeights load_initial_weights(ResNet& model, const WeightsFile& weights) {
  InitialWeights report;
  const std::string& source = weights.source;
  report.source = source;
  report.format = weights.format;
  report.stripped_prefix = weights.stripped_prefix;
  const NamedTensors& file_tensors = weights.tensors;
  const std::map<std::string, torch::Tensor> file(file_tensors.begin(), file_tensors.end());
  const NamedTensors own = module_tensors(*model);
  Mismatches problems = mismatches(file, own);
  const torch::Tensor& weight = model->fc->weight;
  const bool head_in_file = file.count(kHead[0]) && file.count(kHead[1]);
  report.head_in_file = head_in_file;
  const bool replace_head = !head_in_file || file.at(kHead[0]).sizes() != weight.sizes() ||
                            file.at(kHead[1]).sizes() != model->fc->bias.sizes();
  if (head_in_file && replace_head && !head_replaceable(file.at(kHead[0]), file.at(kHead[1]), weight))
    problems.different.push_back("fc.weight: the file's shape is " + shape_of(file.at(kHead[0])) + ", the model's " +
                       shape_of(weight) + " (not only the class count differs)");
  if (problems.any()) {
    const std::string holds = architecture_of(file_tensors), builds = model->arch;
    std::string message = "--init " + source + " does not fit this run's " + builds;
    if (!holds.empty() && holds != builds) message += ": the file holds a " + holds + " (use --arch " + holds + ")";
    throw Error(message + listed("tensors missing from the file", problems.missing) +
                listed("tensors the model does not have", problems.extra) +
                listed("tensors of another shape or kind", problems.different));
  }
  torch::NoGradGuard no_grad;
  for (const auto& [name, tensor] : own) {
    if (replace_head && is_head(name)) continue;
    tensor.copy_(file.at(name).to(tensor.scalar_type()));
    ++report.tensors;
  }
  if (head_in_file && replace_head) report.file_classes = file.at(kHead[0]).size(0);
  return report;
}

}  // namespace histotrain
