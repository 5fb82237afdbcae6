// Convolution weight gradients by one GEMM (model/conv_weight_grad.h): the same gradients as
// LibTorch's convolution backward, in every case the tuned path covers, and the untouched
// forward everywhere else.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/conv_weight_grad.h"
#include "model/resnet.h"

namespace histotrain {
namespace {

namespace nn = torch::nn;

nn::Conv2d padded_conv(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false));
}

void expect_close(const torch::Tensor& a, const torch::Tensor& b, const std::string& what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  const double scale = b.abs().max().item<double>() + 1e-12;
  EXPECT_LT((a - b).abs().max().item<double>() / scale, 1e-5) << what;
}

struct Shape {
  int64_t batch, in, out, side, kernel, stride;
};

// The shapes of ResNet's convolutions, small: 3x3 (stride 1 and 2), the 1x1 downsample, the 7x7
// stem, maps from 1x1 (where the 3x3 kernel sees mostly padding) to odd sizes.
const Shape kShapes[] = {{4, 8, 16, 1, 3, 1},  {4, 8, 16, 2, 3, 1}, {3, 8, 8, 5, 3, 1}, {4, 8, 16, 4, 3, 2},
                         {4, 8, 16, 3, 3, 2},  {4, 8, 16, 4, 1, 2}, {2, 3, 8, 9, 7, 2}, {1, 4, 4, 1, 1, 1}};

TEST(ConvWeightGrad, TheGemmGivesLibTorchsWeightGradient) {
  torch::manual_seed(1);
  for (const Shape& s : kShapes) {
    const auto x = torch::randn({s.batch, s.in, s.side, s.side});
    const auto w = torch::randn({s.out, s.in, s.kernel, s.kernel});
    const int64_t pad = s.kernel / 2;
    const auto y = torch::conv2d(x, w, {}, s.stride, pad);
    const auto g = torch::randn_like(y);
    const auto expected = std::get<1>(at::convolution_backward(g, x, w, c10::nullopt, {s.stride, s.stride},
                                                               {pad, pad}, {1, 1}, false, {0, 0}, 1,
                                                               {false, true, false}));
    expect_close(conv_weight_grad_by_gemm(g, x, w, s.stride, pad), expected,
                 "side " + std::to_string(s.side) + " kernel " + std::to_string(s.kernel) + " stride " +
                     std::to_string(s.stride));
  }
}

// Through autograd: the tuned convolution's output, input gradient and weight gradient are the
// module's own, and each new shape is tuned once.
TEST(ConvWeightGrad, TheTunedConvolutionMatchesTheModuleAndTunesEachShapeOnce) {
  torch::manual_seed(2);
  for (const Shape& s : kShapes) {
    auto conv = padded_conv(s.in, s.out, s.kernel, s.stride);
    const auto x = torch::randn({s.batch, s.in, s.side, s.side}).requires_grad_(true);
    const auto run = [&](bool tuned) {
      conv->zero_grad();
      x.mutable_grad() = torch::Tensor();
      const auto y = conv_forward(*conv, x, tuned);
      const auto g = torch::ones_like(y).mul_(torch::arange(y.numel()).view(y.sizes()).remainder(7).sub(3));
      (y * g).sum().backward();
      return std::vector<torch::Tensor>{y.detach(), x.grad().clone(), conv->weight.grad().clone()};
    };
    const auto native = run(false);
    const auto before = conv_tuning_stats();
    const auto tuned = run(true);
    const auto after_first = conv_tuning_stats();
    run(true);
    const auto after_second = conv_tuning_stats();
    for (size_t i = 0; i < native.size(); ++i) expect_close(tuned[i], native[i], "result " + std::to_string(i));
    EXPECT_EQ(after_first.gemm_shapes + after_first.native_shapes, before.gemm_shapes + before.native_shapes + 1);
    EXPECT_EQ(after_second.gemm_shapes + after_second.native_shapes,
              after_first.gemm_shapes + after_first.native_shapes);
  }
}

// Cases the GEMM does not cover take the module's own forward, bit for bit, and tune nothing.
TEST(ConvWeightGrad, UncoveredCasesAreTheModulesOwnForward) {
  torch::manual_seed(3);
  auto conv = padded_conv(4, 8, 3, 1);
  const auto count = [] {
    const auto s = conv_tuning_stats();
    return s.gemm_shapes + s.native_shapes;
  };
  const int64_t tuned_before = count();
  const auto x = torch::randn({2, 4, 6, 6});
  {
    torch::NoGradGuard no_grad;  // evaluation
    EXPECT_TRUE(torch::equal(conv_forward(*conv, x, true), conv->forward(x)));
  }
  const auto nhwc = x.contiguous(torch::MemoryFormat::ChannelsLast);
  EXPECT_TRUE(torch::equal(conv_forward(*conv, nhwc, true), conv->forward(nhwc)));
  auto dilated = nn::Conv2d(nn::Conv2dOptions(4, 8, 3).padding(2).dilation(2).bias(false));
  EXPECT_TRUE(torch::equal(conv_forward(*dilated, x, true), dilated->forward(x)));
  auto biased = nn::Conv2d(nn::Conv2dOptions(4, 8, 3).padding(1));
  EXPECT_TRUE(torch::equal(conv_forward(*biased, x, true), biased->forward(x)));
  EXPECT_EQ(count(), tuned_before);  // none of them reached the backward's tuning
  const auto y = conv_forward(*conv, nhwc, true);
  y.sum().backward();
  EXPECT_EQ(count(), tuned_before);
}

// The whole network, with the tuning on, computes what it computes without it: the stem, every
// block and the downsample branches all go through conv_forward.
TEST(ConvWeightGrad, AResNetTrainsTheSameWithTheTuningOn) {
  torch::manual_seed(4);
  ResNet model("resnet18", 5);
  const auto x = torch::randn({4, 3, 32, 32});
  const auto y = torch::tensor({0, 1, 2, 3});
  const auto gradients = [&](bool tuned) {
    model->tune_conv_weight_grads(tuned);
    model->zero_grad();
    torch::nn::functional::cross_entropy(model->forward(x), y).backward();
    std::vector<torch::Tensor> grads;
    for (const auto& p : model->parameters()) grads.push_back(p.grad().clone());
    return grads;
  };
  const auto native = gradients(false);
  const auto tuned = gradients(true);
  ASSERT_EQ(native.size(), tuned.size());
  for (size_t i = 0; i < native.size(); ++i) {
    const double scale = native[i].abs().max().item<double>() + 1e-6;
    EXPECT_LT((tuned[i] - native[i]).abs().max().item<double>() / scale, 1e-3) << "parameter " << i;
  }
}

}  // namespace
}  // namespace histotrain
