// ONNX export through ONNX's own protobuf classes (Debian's libonnx-dev): the inference ops
// become ONNX nodes (opset 13), the weights initializers under torchvision's names, and ONNX's C++
// checker validates the model before a byte is written.
#include "model/model_export.h"

#include "util/errors.h"

#ifdef HISTOTRAIN_WITH_ONNX
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "model/inference_ops.h"
#endif

namespace histotrain {

#ifndef HISTOTRAIN_WITH_ONNX

bool onnx_export_available() { return false; }

std::string onnx_bytes(const ResNetImpl&, const ExportSettings&) {
  throw Error("this build of histotrain writes no ONNX: install libonnx-dev and configure again (./run.sh build does)");
}

#else

namespace {

using Kind = InferenceOp::Kind;
constexpr int kOpset = 13;
constexpr int64_t kIrVersion = 7;  // the IR of opset 13: read by every onnxruntime since 1.7

class GraphWriter {
 public:
  GraphWriter(onnx::GraphProto& graph, const ResNetImpl& model) : graph_(graph) {
    for (const auto& p : model.named_parameters()) tensors_.emplace(p.key(), p.value());
    for (const auto& b : model.named_buffers()) tensors_.emplace(b.key(), b.value());
  }

  onnx::NodeProto& node(const char* op, const std::vector<std::string>& inputs, const std::string& output) {
    onnx::NodeProto& n = *graph_.add_node();
    n.set_op_type(op);
    n.set_name(output);
    for (const auto& i : inputs) n.add_input(i);
    n.add_output(output);
    return n;
  }

  // The initializer `name` from the model's tensor of that name (once), and its name.
  std::string weight(const std::string& name) {
    if (added_.insert(name).second) add_initializer(name, tensors_.at(name));
    return name;
  }

  void add_initializer(const std::string& name, const torch::Tensor& tensor) {
    const torch::Tensor t = tensor.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    onnx::TensorProto& init = *graph_.add_initializer();
    init.set_name(name);
    init.set_data_type(onnx::TensorProto::FLOAT);
    for (const int64_t d : t.sizes()) init.add_dims(d);
    init.set_raw_data(std::string(static_cast<const char*>(t.data_ptr()), t.numel() * sizeof(float)));
  }

 private:
  onnx::GraphProto& graph_;
  std::map<std::string, torch::Tensor> tensors_;
  std::set<std::string> added_;
};

void ints(onnx::NodeProto& n, const char* name, std::vector<int64_t> values) {
  onnx::AttributeProto& a = *n.add_attribute();
  a.set_name(name);
  a.set_type(onnx::AttributeProto::INTS);
  for (const int64_t v : values) a.add_ints(v);
}

void scalar(onnx::NodeProto& n, const char* name, double value) {
  onnx::AttributeProto& a = *n.add_attribute();
  a.set_name(name);
  a.set_type(onnx::AttributeProto::FLOAT);
  a.set_f(static_cast<float>(value));
}

void integer(onnx::NodeProto& n, const char* name, int64_t value) {
  onnx::AttributeProto& a = *n.add_attribute();
  a.set_name(name);
  a.set_type(onnx::AttributeProto::INT);
  a.set_i(value);
}

void add_op(GraphWriter& g, const InferenceOp& op) {
  const std::string& m = op.module;
  switch (op.kind) {
    case Kind::normalize: {
      const std::string centred = op.output + ".centred";
      g.node("Sub", {op.inputs[0], "normalization.mean"}, centred);
      g.node("Div", {centred, "normalization.std"}, op.output);
      return;
    }
    case Kind::conv: {
      auto& n = g.node("Conv", {op.inputs[0], g.weight(m + ".weight")}, op.output);
      ints(n, "kernel_shape", {op.kernel, op.kernel});
      ints(n, "strides", {op.stride, op.stride});
      ints(n, "pads", {op.padding, op.padding, op.padding, op.padding});
      return;
    }
    case Kind::batch_norm: {
      auto& n = g.node("BatchNormalization",
                       {op.inputs[0], g.weight(m + ".weight"), g.weight(m + ".bias"), g.weight(m + ".running_mean"),
                        g.weight(m + ".running_var")},
                       op.output);
      scalar(n, "epsilon", kBatchNormEpsilon);
      return;
    }
    case Kind::relu:
      g.node("Relu", op.inputs, op.output);
      return;
    case Kind::max_pool: {
      auto& n = g.node("MaxPool", op.inputs, op.output);
      ints(n, "kernel_shape", {op.kernel, op.kernel});
      ints(n, "strides", {op.stride, op.stride});
      ints(n, "pads", {op.padding, op.padding, op.padding, op.padding});
      return;
    }
    case Kind::add:
      g.node("Add", op.inputs, op.output);
      return;
    case Kind::global_pool: {
      const std::string pooled = op.output + ".pooled";
      g.node("GlobalAveragePool", op.inputs, pooled);
      integer(g.node("Flatten", {pooled}, op.output), "axis", 1);
      return;
    }
    case Kind::linear: {
      auto& n = g.node("Gemm", {op.inputs[0], g.weight(m + ".weight"), g.weight(m + ".bias")}, op.output);
      integer(n, "transB", 1);
      return;
    }
  }
}

// A float tensor's type and shape; "batch" as a named (dynamic) dimension.
void declare(onnx::ValueInfoProto& v, const std::string& name, const std::vector<int64_t>& dims) {
  v.set_name(name);
  auto& tensor = *v.mutable_type()->mutable_tensor_type();
  tensor.set_elem_type(onnx::TensorProto::FLOAT);
  auto& shape = *tensor.mutable_shape();
  shape.add_dim()->set_dim_param("batch");
  for (const int64_t d : dims) shape.add_dim()->set_dim_value(d);
}

void metadata(onnx::ModelProto& model, const std::string& key, const std::string& value) {
  auto& p = *model.add_metadata_props();
  p.set_key(key);
  p.set_value(value);
}

}  // namespace

bool onnx_export_available() { return true; }

std::string onnx_bytes(const ResNetImpl& model, const ExportSettings& s) {
  onnx::ModelProto proto;
  proto.set_ir_version(kIrVersion);
  proto.set_producer_name("histotrain");
  proto.set_model_version(1);
  proto.set_doc_string("ResNet tile classifier: input float RGB in [0, 1], NCHW; normalised inside; logits out");
  auto& opset = *proto.add_opset_import();
  opset.set_domain("");
  opset.set_version(kOpset);
  onnx::GraphProto& graph = *proto.mutable_graph();
  graph.set_name(model.arch);
  GraphWriter g(graph, model);
  g.add_initializer("normalization.mean", torch::tensor({s.mean[0], s.mean[1], s.mean[2]}).view({1, 3, 1, 1}));
  g.add_initializer("normalization.std", torch::tensor({s.std[0], s.std[1], s.std[2]}).view({1, 3, 1, 1}));
  for (const auto& op : resnet_inference_ops(model)) add_op(g, op);
  const auto K = static_cast<int64_t>(s.classes.size());
  declare(*graph.add_input(), "input", {3, s.image_size, s.image_size});
  declare(*graph.add_output(), "logits", {K});
  if (s.temperature > 0) {
    g.add_initializer("temperature", torch::tensor({static_cast<float>(s.temperature)}));
    g.node("Div", {"logits", "temperature"}, "scaled_logits");
    integer(g.node("Softmax", {"scaled_logits"}, "probabilities"), "axis", 1);
    declare(*graph.add_output(), "probabilities", {K});
  }
  metadata(proto, "classes", nlohmann::json(s.classes).dump());
  metadata(proto, "image_size", std::to_string(s.image_size));
  metadata(proto, "normalization", nlohmann::json({{"mean", s.mean}, {"std", s.std}}).dump());
  metadata(proto, "temperature", std::to_string(s.temperature));
  try {
    onnx::checker::check_model(proto);
  } catch (const std::exception& e) {
    throw Error(std::string("the ONNX model failed ONNX's checker: ") + e.what());
  }
  std::string bytes;
  if (!proto.SerializeToString(&bytes)) throw Error("serialising the ONNX model failed");
  return bytes;
}

#endif

}  // namespace histotrain
