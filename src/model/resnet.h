// ResNet-18/34/50 in torch::nn with torchvision's parameter and buffer names (conv1.weight,
// layer1.0.bn1.running_mean, layer2.0.downsample.0.weight, fc.bias, ...), so weights move between
// histotrain and Python unchanged.
#pragma once
#include <torch/torch.h>

#include <string>
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
};
TORCH_MODULE(ResidualBlock);

struct ResNetImpl : torch::nn::Module {
  ResNetImpl(const std::string& arch, int64_t num_classes);
  torch::Tensor forward(torch::Tensor x);

  std::string arch;
  torch::nn::Conv2d conv1{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr};
  torch::nn::Sequential layer1{nullptr}, layer2{nullptr}, layer3{nullptr}, layer4{nullptr};
  torch::nn::Linear fc{nullptr};
};
TORCH_MODULE(ResNet);

// "resnet18", "resnet34", "resnet50".
const std::vector<std::string>& supported_archs();

// Parameters that get weight decay (conv and linear weights), and those that do not (BN
// weights and every bias): decaying BN scales and biases only slows training down.
struct ParameterGroups {
  std::vector<torch::Tensor> decay, no_decay;
};
ParameterGroups split_for_weight_decay(torch::nn::Module& model);

}  // namespace histotrain
