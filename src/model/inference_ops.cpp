#include "model/inference_ops.h"

namespace histotrain {

namespace {

using Kind = InferenceOp::Kind;

struct OpList {
  std::vector<InferenceOp> ops;
  int next = 0;

  // Appends an op and returns the name of its output, a fresh value.
  std::string add(InferenceOp op) {
    op.output = "v" + std::to_string(next++);
    ops.push_back(std::move(op));
    return ops.back().output;
  }
  std::string conv(const std::string& in, const std::string& module, const torch::nn::Conv2dImpl& c) {
    // Every convolution of the ResNet pads by half its kernel (model/resnet.cpp's conv()).
    const int64_t kernel = (*c.options.kernel_size())[0];
    return add({Kind::conv, {in}, "", module, kernel, (*c.options.stride())[0], kernel / 2});
  }
  std::string bn(const std::string& in, const std::string& module) { return add({Kind::batch_norm, {in}, "", module}); }
  std::string relu(const std::string& in) { return add({Kind::relu, {in}, "", ""}); }
};

std::string residual_block(OpList& list, const std::string& in, const std::string& name, const ResidualBlockImpl& b) {
  std::string identity = in;
  if (!b.downsample.is_empty()) {
    const auto& conv = *b.downsample->ptr<torch::nn::Conv2dImpl>(0);
    identity = list.bn(list.conv(in, name + ".downsample.0", conv), name + ".downsample.1");
  }
  std::string x = list.relu(list.bn(list.conv(in, name + ".conv1", *b.conv1), name + ".bn1"));
  x = list.bn(list.conv(x, name + ".conv2", *b.conv2), name + ".bn2");
  if (b.bottleneck) x = list.bn(list.conv(list.relu(x), name + ".conv3", *b.conv3), name + ".bn3");
  return list.relu(list.add({Kind::add, {x, identity}, "", ""}));
}

}  // namespace

std::vector<InferenceOp> resnet_inference_ops(const ResNetImpl& model) {
  OpList list;
  std::string x = list.add({Kind::normalize, {"input"}, "", ""});
  x = list.relu(list.bn(list.conv(x, "conv1", *model.conv1), "bn1"));
  x = list.add({Kind::max_pool, {x}, "", "", 3, 2, 1});
  for (size_t b = 0; b < model.blocks.size(); ++b) x = residual_block(list, x, model.block_names[b], *model.blocks[b]);
  x = list.add({Kind::global_pool, {x}, "", ""});
  list.add({Kind::linear, {x}, "", "fc"});
  list.ops.back().output = "logits";
  return list.ops;
}

}  // namespace histotrain
