// ResNet-10/18/34/50 in torch::nn with torchvision's parameter and buffer names (conv1.weight,
// layer1.0.bn1.running_mean, layer2.0.downsample.0.weight, fc.bias, ...), so weights move between
// histotrain and Python unchanged.
#pragma once
#include <torch/torch.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace histotrain {

// The blocks torchvision's BasicBlock (two 3x3 convs) and Bottleneck (1x1, 3x3, 1x1) compute.
struct ResidualBlockImpl : torch::nn::Module {
  ResidualBlockImpl(int64_t in_channels, int64_t width, int64_t stride, bool bottleneck);
  torch::Tensor forward(torch::Tensor x);

  bool bottleneck;
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
  torch::nn::Sequential downsample{nullptr};  // 1x1 conv + BN when the shape changes
  bool tuned_conv_weight_grads = false;       // see ResNetImpl::tune_conv_weight_grads
};
TORCH_MODULE(ResidualBlock);

struct ResNetImpl : torch::nn::Module {
  ResNetImpl(const std::string& arch, int64_t num_classes);
  torch::Tensor forward(torch::Tensor x);

  // The network as a chain of units, where pipeline stages may cut it: unit 0 is the stem
  // (conv1, bn1, ReLU, max-pool), then every residual block in order, the last the head
  // (average pool, fc). forward(x) == forward_units(x, 0, unit_count()).
  int64_t unit_count() const { return static_cast<int64_t>(blocks.size()) + 2; }
  torch::Tensor forward_units(torch::Tensor x, int64_t first, int64_t end);
  std::string unit_name(int64_t unit) const;  // "stem", "layer2.1", "head"
  std::vector<torch::Tensor> unit_parameters(int64_t unit);
  std::vector<torch::Tensor> unit_buffers(int64_t unit);
  // The modules of a unit, e.g. to place it on a device of its own. forward_units() moves the
  // activations to each unit's device, so a model spread over devices runs as one.
  std::vector<std::shared_ptr<torch::nn::Module>> unit_modules(int64_t unit);
  torch::Device unit_device(int64_t unit) const;

  // Take each convolution's weight gradient by the faster of LibTorch's kernel and a GEMM,
  // measured per shape (model/conv_weight_grad.h). For non-deterministic fp32 CPU training.
  void tune_conv_weight_grads(bool on);

  // A linear probe (train --freeze-backbone): only the head (fc) learns. Every other parameter
  // stops requiring gradients, so backward never enters the backbone, and the backbone's
  // BatchNorm layers keep their statistics: train() leaves them in eval mode.
  void freeze_backbone();
  void train(bool on = true) override;

  std::string arch;
  bool tuned_conv_weight_grads = false;
  bool backbone_frozen = false;
  torch::nn::Conv2d conv1{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr};
  torch::nn::Sequential layer1{nullptr}, layer2{nullptr}, layer3{nullptr}, layer4{nullptr};
  torch::nn::Linear fc{nullptr};
  std::vector<ResidualBlock> blocks;      // layer1.0 ... layer4.N, in order
  std::vector<std::string> block_names;  // "layer1.0", ...
};
TORCH_MODULE(ResNet);

// "resnet10", "resnet18", "resnet34", "resnet50".
const std::vector<std::string>& supported_archs();

// --arch: one of supported_archs(), parsed once where the text enters (util/text_form.h).
struct ArchName {
  std::string name = "resnet18";

  static std::optional<ArchName> parse(std::string_view text);
  std::string text() const { return name; }
  static const char* example() { return "resnet50"; }
};

// ResNetImpl::unit_count() of an architecture, without building it (the stem, each block, the
// head); throws UsageError for an unknown one.
int64_t resnet_unit_count(const std::string& arch);

// Parameters that get weight decay (conv and linear weights), and those that do not (BN
// weights and every bias): decaying BN scales and biases only slows training down.
struct ParameterGroups {
  std::vector<torch::Tensor> decay, no_decay;
};
ParameterGroups split_for_weight_decay(torch::nn::Module& model);

}  // namespace histotrain
