// TorchScript export: the module tree of torchvision's names with each tensor registered as a
// parameter or buffer, and forward() written as TorchScript source from the inference ops, then
// compiled by LibTorch's own TorchScript compiler (Module::define).
#include <cstdio>
#include <map>
#include <sstream>

#include <torch/script.h>

#include <nlohmann/json.hpp>

#include "model/inference_ops.h"
#include "model/model_export.h"
#include "util/errors.h"

namespace histotrain {

namespace {

using Kind = InferenceOp::Kind;

std::string number(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.9g", v);
  std::string s = text;
  if (s.find_first_of(".e") == std::string::npos) s += ".0";  // a float literal, not an int
  return s;
}

// "layer2.0.downsample.0" -> getattr(getattr(self.layer2, "0").downsample, "0")
std::string module_expression(const std::string& path) {
  std::string expr = "self";
  std::stringstream parts(path);
  for (std::string part; std::getline(parts, part, '.');)
    expr = std::isdigit(static_cast<unsigned char>(part[0])) ? "getattr(" + expr + ", \"" + part + "\")" : expr + "." + part;
  return expr;
}

std::string channel_tensor(const std::array<float, 3>& v) {
  return "torch.tensor([" + number(v[0]) + ", " + number(v[1]) + ", " + number(v[2]) +
         "], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)";
}

std::string statement(const InferenceOp& op, const ExportSettings& s) {
  const auto in = [&](size_t i) { return op.inputs[i] == "input" ? std::string("x") : op.inputs[i]; };
  const std::string m = module_expression(op.module), lhs = "    " + op.output + " = ";
  const std::string kernel = std::to_string(op.kernel), stride = std::to_string(op.stride),
                    padding = std::to_string(op.padding);
  switch (op.kind) {
    case Kind::normalize:
      return lhs + "(" + in(0) + " - " + channel_tensor(s.mean) + ") / " + channel_tensor(s.std);
    case Kind::conv:
      return lhs + "torch.conv2d(" + in(0) + ", " + m + ".weight, None, [" + stride + ", " + stride + "], [" +
             padding + ", " + padding + "])";
    case Kind::batch_norm:
      return lhs + "torch.batch_norm(" + in(0) + ", " + m + ".weight, " + m + ".bias, " + m + ".running_mean, " + m +
             ".running_var, False, 0.1, " + number(kBatchNormEpsilon) + ", False)";
    case Kind::relu:
      return lhs + "torch.relu(" + in(0) + ")";
    case Kind::max_pool:
      return lhs + "torch.max_pool2d(" + in(0) + ", [" + kernel + ", " + kernel + "], [" + stride + ", " + stride +
             "], [" + padding + ", " + padding + "])";
    case Kind::add:
      return lhs + in(0) + " + " + in(1);
    case Kind::global_pool:
      return lhs + "torch.flatten(torch.adaptive_avg_pool2d(" + in(0) + ", [1, 1]), 1)";
    case Kind::linear:
      return lhs + "torch.linear(" + in(0) + ", " + m + ".weight, " + m + ".bias)";
  }
  return "";
}

std::string forward_source(const std::vector<InferenceOp>& ops, const ExportSettings& s) {
  std::string src = "def forward(self, x: Tensor) -> Tensor:\n";
  for (const auto& op : ops) src += statement(op, s) + "\n";
  src += "    return logits\n\n";
  src += "def probabilities(self, x: Tensor) -> Tensor:\n    return torch.softmax(self.forward(x) / " +
         number(s.temperature > 0 ? s.temperature : 1.0) + ", 1)\n";
  return src;
}

// The module tree, each tensor at its torchvision name: "layer1.0.bn1.running_mean" is buffer
// running_mean of module 0 of module layer1.
class ModuleTree {
 public:
  explicit ModuleTree(std::shared_ptr<torch::jit::CompilationUnit> cu) : cu_(std::move(cu)), root_(make()) {}
  void add(const std::string& name, const torch::Tensor& tensor, bool buffer) {
    const size_t dot = name.rfind('.');
    torch::jit::Module owner = dot == std::string::npos ? root_ : module_at(name.substr(0, dot));
    const std::string leaf = dot == std::string::npos ? name : name.substr(dot + 1);
    const torch::Tensor copy = tensor.detach().to(torch::kCPU).contiguous().clone();
    if (buffer)
      owner.register_buffer(leaf, copy);
    else
      owner.register_parameter(leaf, copy, /*is_buffer=*/false);
  }
  torch::jit::Module& root() { return root_; }

 private:
  torch::jit::Module make() {
    return torch::jit::Module(c10::QualifiedName("__torch__.histotrain.ResNetModule"), cu_, /*shouldMangle=*/true);
  }
  torch::jit::Module module_at(const std::string& path) {
    auto found = modules_.find(path);
    if (found != modules_.end()) return found->second;
    const size_t dot = path.rfind('.');
    torch::jit::Module parent = dot == std::string::npos ? root_ : module_at(path.substr(0, dot));
    torch::jit::Module child = make();
    parent.register_module(dot == std::string::npos ? path : path.substr(dot + 1), child);
    return modules_.emplace(path, child).first->second;
  }
  std::shared_ptr<torch::jit::CompilationUnit> cu_;
  torch::jit::Module root_;
  std::map<std::string, torch::jit::Module> modules_;
};

}  // namespace

torch::jit::Module torchscript_module(const ResNetImpl& model, const ExportSettings& settings) {
  ModuleTree tree(std::make_shared<torch::jit::CompilationUnit>());
  for (const auto& p : model.named_parameters()) tree.add(p.key(), p.value(), false);
  for (const auto& b : model.named_buffers()) tree.add(b.key(), b.value(), true);
  tree.root().define(forward_source(resnet_inference_ops(model), settings));
  tree.root().eval();
  return tree.root();
}

torch::jit::Module cpu_inference_module(const ResNetImpl& model, const ExportSettings& settings) {
  torch::jit::Module module = torchscript_module(model, settings);
  torch::jit::Module frozen = torch::jit::freeze(module);
  return torch::jit::optimize_for_inference(frozen);
}

std::string torchscript_bytes(const ResNetImpl& model, const ExportSettings& settings) {
  torch::jit::Module module = torchscript_module(model, settings);
  const nlohmann::json meta = {{"classes", settings.classes},
                               {"image_size", settings.image_size},
                               {"input", "float RGB in [0, 1], NCHW; normalised inside"},
                               {"mean", settings.mean},
                               {"std", settings.std},
                               {"temperature", settings.temperature}};
  std::ostringstream out;
  module.save(out, {{"histotrain.json", meta.dump(2)}});
  return out.str();
}

}  // namespace histotrain
