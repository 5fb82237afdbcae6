#include "model/resnet.h"

#include <map>

#include "model/conv_weight_grad.h"
#include "util/errors.h"

namespace histotrain {

namespace nn = torch::nn;

namespace {

struct ArchSpec {
  bool bottleneck;
  std::vector<int64_t> blocks;  // per stage
};

const std::map<std::string, ArchSpec>& arch_specs() {
  static const std::map<std::string, ArchSpec> specs = {
      // ResNet-10: one basic block per stage (torchvision's ResNet class with layers [1, 1, 1, 1]),
      // half ResNet-18's compute: for time-to-accuracy on a few CPU cores.
      {"resnet10", {false, {1, 1, 1, 1}}},
      {"resnet18", {false, {2, 2, 2, 2}}},
      {"resnet34", {false, {3, 4, 6, 3}}},
      {"resnet50", {true, {3, 4, 6, 3}}},
  };
  return specs;
}

nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false));
}

// torchvision's initialisation: He-normal convs (fan_out), BN scale 1 and shift 0.
void init_weights(nn::Module& module) {
  for (auto& m : module.modules(/*include_self=*/false)) {
    if (auto* c = m->as<nn::Conv2d>()) {
      nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
    } else if (auto* b = m->as<nn::BatchNorm2d>()) {
      nn::init::ones_(b->weight);
      nn::init::zeros_(b->bias);
    }
  }
}

// Each residual branch starts as zero (its last BN scale is 0), so every block begins as the
// identity: early steps are stable at high learning rates (torchvision's zero_init_residual).
void zero_init_residual_branches(nn::Module& module) {
  for (auto& m : module.modules(/*include_self=*/false))
    if (auto* block = m->as<ResidualBlockImpl>()) nn::init::zeros_((block->bottleneck ? block->bn3 : block->bn2)->weight);
}

}  // namespace

int64_t resnet_unit_count(const std::string& arch) {
  const auto spec = arch_specs().find(arch);
  if (spec == arch_specs().end()) throw UsageError("unknown architecture '" + arch + "'");
  int64_t blocks = 0;
  for (const int64_t n : spec->second.blocks) blocks += n;
  return blocks + 2;
}

const std::vector<std::string>& supported_archs() {
  static const std::vector<std::string> names = {"resnet10", "resnet18", "resnet34", "resnet50"};
  return names;
}

std::optional<ArchName> ArchName::parse(std::string_view text) {
  for (const std::string& name : supported_archs())
    if (text == name) return ArchName{name};
  return std::nullopt;
}

ResidualBlockImpl::ResidualBlockImpl(int64_t in_channels, int64_t width, int64_t stride, bool bottleneck_)
    : bottleneck(bottleneck_) {
  const int64_t out_channels = bottleneck ? width * 4 : width;
  if (bottleneck) {  // torchvision v1.5: the stride sits on the 3x3 conv
    conv1 = register_module("conv1", conv(in_channels, width, 1, 1));
    bn1 = register_module("bn1", nn::BatchNorm2d(width));
    conv2 = register_module("conv2", conv(width, width, 3, stride));
    bn2 = register_module("bn2", nn::BatchNorm2d(width));
    conv3 = register_module("conv3", conv(width, out_channels, 1, 1));
    bn3 = register_module("bn3", nn::BatchNorm2d(out_channels));
  } else {
    conv1 = register_module("conv1", conv(in_channels, width, 3, stride));
    bn1 = register_module("bn1", nn::BatchNorm2d(width));
    conv2 = register_module("conv2", conv(width, width, 3, 1));
    bn2 = register_module("bn2", nn::BatchNorm2d(width));
  }
  if (stride != 1 || in_channels != out_channels)
    downsample = register_module(
        "downsample", nn::Sequential(conv(in_channels, out_channels, 1, stride), nn::BatchNorm2d(out_channels)));
}

torch::Tensor ResidualBlockImpl::forward(torch::Tensor x) {
  auto convolve = [this](torch::nn::Conv2d& conv, const torch::Tensor& in) {
    return conv_forward(*conv, in, tuned_conv_weight_grads);
  };
  torch::Tensor identity = x;
  if (downsample) {
    auto& conv = *downsample[0]->as<nn::Conv2dImpl>();
    identity = downsample[1]->as<nn::BatchNorm2dImpl>()->forward(conv_forward(conv, x, tuned_conv_weight_grads));
  }
  // In-place ReLUs, as torchvision's inplace=True: BN and add do not need their outputs for
  // backward, and the saved memory traffic is a few percent of the step on CPU.
  torch::Tensor out = bn1(convolve(conv1, x)).relu_();
  if (bottleneck) {
    out = bn2(convolve(conv2, out)).relu_();
    out = bn3(convolve(conv3, out));
  } else {
    out = bn2(convolve(conv2, out));
  }
  return (out + identity).relu_();
}

ResNetImpl::ResNetImpl(const std::string& arch_, int64_t num_classes) : arch(arch_) {
  auto spec = arch_specs().find(arch);
  if (spec == arch_specs().end()) throw UsageError("unknown architecture '" + arch + "' (resnet10, resnet18, resnet34, resnet50)");
  if (num_classes < 2) throw Error("a classifier needs at least 2 classes, got " + std::to_string(num_classes));
  const bool bottleneck = spec->second.bottleneck;
  conv1 = register_module("conv1", conv(3, 64, 7, 2));
  bn1 = register_module("bn1", nn::BatchNorm2d(64));
  int64_t channels = 64;
  auto make_stage = [&](int64_t width, int64_t blocks, int64_t stride) {
    nn::Sequential stage;
    for (int64_t b = 0; b < blocks; ++b) {
      stage->push_back(ResidualBlock(channels, width, b == 0 ? stride : 1, bottleneck));
      channels = bottleneck ? width * 4 : width;
    }
    return stage;
  };
  const auto& block_counts = spec->second.blocks;
  layer1 = register_module("layer1", make_stage(64, block_counts[0], 1));
  layer2 = register_module("layer2", make_stage(128, block_counts[1], 2));
  layer3 = register_module("layer3", make_stage(256, block_counts[2], 2));
  layer4 = register_module("layer4", make_stage(512, block_counts[3], 2));
  fc = register_module("fc", nn::Linear(channels, num_classes));
  int layer_index = 1;
  for (auto& layer : {layer1, layer2, layer3, layer4}) {
    for (size_t b = 0; b < layer->size(); ++b) {
      blocks.push_back(ResidualBlock(layer->ptr<ResidualBlockImpl>(b)));
      block_names.push_back("layer" + std::to_string(layer_index) + "." + std::to_string(b));
    }
    ++layer_index;
  }
  init_weights(*this);
  zero_init_residual_branches(*this);
}

torch::Tensor ResNetImpl::forward(torch::Tensor x) { return forward_units(std::move(x), 0, unit_count()); }

torch::Tensor ResNetImpl::forward_units(torch::Tensor x, int64_t first, int64_t end) {
  const int64_t head = unit_count() - 1;
  for (int64_t u = first; u < end; ++u) {
    const torch::Device device = unit_device(u);
    if (x.device() != device) x = x.to(device);
    if (u == 0) {
      x = torch::max_pool2d(bn1(conv_forward(*conv1, x, tuned_conv_weight_grads)).relu_(), 3, 2, 1);
    } else if (u == head) {
      x = fc(torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1));
    } else {
      x = blocks[static_cast<size_t>(u - 1)]->forward(x);
    }
  }
  return x;
}

std::string ResNetImpl::unit_name(int64_t unit) const {
  if (unit == 0) return "stem";
  if (unit == unit_count() - 1) return "head";
  return block_names.at(static_cast<size_t>(unit - 1));
}

std::vector<torch::Tensor> ResNetImpl::unit_parameters(int64_t unit) {
  if (unit == 0) {
    auto p = conv1->parameters();
    for (const auto& t : bn1->parameters()) p.push_back(t);
    return p;
  }
  if (unit == unit_count() - 1) return fc->parameters();
  return blocks.at(static_cast<size_t>(unit - 1))->parameters();
}

std::vector<std::shared_ptr<torch::nn::Module>> ResNetImpl::unit_modules(int64_t unit) {
  if (unit == 0) return {conv1.ptr(), bn1.ptr()};
  if (unit == unit_count() - 1) return {fc.ptr()};
  return {blocks.at(static_cast<size_t>(unit - 1)).ptr()};
}

torch::Device ResNetImpl::unit_device(int64_t unit) const {
  if (unit == 0) return conv1->weight.device();
  if (unit == unit_count() - 1) return fc->weight.device();
  return blocks.at(static_cast<size_t>(unit - 1))->conv1->weight.device();
}

std::vector<torch::Tensor> ResNetImpl::unit_buffers(int64_t unit) {
  if (unit == 0) return bn1->buffers();
  if (unit == unit_count() - 1) return {};
  return blocks.at(static_cast<size_t>(unit - 1))->buffers();
}

void ResNetImpl::tune_conv_weight_grads(bool on) {
  tuned_conv_weight_grads = on;
  for (auto& block : blocks) block->tuned_conv_weight_grads = on;
}

void ResNetImpl::freeze_backbone() {
  backbone_frozen = true;
  for (auto& child : named_children())
    if (child.key() != "fc")
      for (auto& p : child.value()->parameters()) p.set_requires_grad(false);
  train(is_training());
}

void ResNetImpl::train(bool on) {
  torch::nn::Module::train(on);
  if (!on || !backbone_frozen) return;
  for (auto& child : named_children())
    if (child.key() != "fc") child.value()->eval();
}

ParameterGroups split_for_weight_decay(torch::nn::Module& model) {
  ParameterGroups groups;
  for (auto& p : model.parameters()) (p.dim() > 1 ? groups.decay : groups.no_decay).push_back(p);
  return groups;
}

}  // namespace histotrain
