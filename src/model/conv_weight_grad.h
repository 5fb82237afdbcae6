// Convolutions whose weight gradient may be one matrix product, where that is faster.
//
// On CPUs, LibTorch's own convolution backward (oneDNN in Debian's 1.13) computes the weight
// gradient of small feature maps very slowly: for ResNet-18's last stage at 32 px (512 channels,
// 1x1 maps) it takes many times the forward, and the last stage's weight gradients were most of
// the step (docs/benchmarks.md). The same gradient is one GEMM between the output gradient and
// the input's im2col columns, a fraction of that with an optimised BLAS.
//
// Which way is faster depends on the shape, the kernels and the BLAS this LibTorch was linked to
// (Debian's reference BLAS makes the GEMM slower still), so it is measured, not assumed: the
// first backward of each shape times both ways and keeps the faster, like cuDNN's benchmark
// mode. The tuning is part of the training time that is counted. Both ways compute the same
// sums (in a different order): results agree to float rounding, not bit for bit, which is why
// deterministic runs keep LibTorch's own way.
#pragma once
#include <torch/torch.h>

#include <cstdint>

namespace histotrain {

// conv.forward(x), with the weight gradient taken by the faster of LibTorch's convolution
// backward and a GEMM over im2col columns, when `tuned` and the case is one the GEMM covers
// (CPU, float32, contiguous, ungrouped, undilated, padding kernel/2, gradients wanted).
// Otherwise exactly conv.forward(x).
// The convolution must pad by kernel/2, as every one of model/resnet.cpp's does.
torch::Tensor conv_forward(torch::nn::Conv2dImpl& conv, const torch::Tensor& x, bool tuned);

// The GEMM way alone (for tests): the gradient of sum(conv2d(x, w) * grad_out) with respect to w.
torch::Tensor conv_weight_grad_by_gemm(const torch::Tensor& grad_out, const torch::Tensor& x,
                                       const torch::Tensor& weight, int64_t stride, int64_t padding);

// What the tuning chose in this process so far.
struct ConvTuningStats {
  int64_t gemm_shapes = 0;    // shapes whose weight gradient is taken by the GEMM
  int64_t native_shapes = 0;  // shapes that kept LibTorch's convolution backward
  double tuning_seconds = 0;  // time spent timing both ways
};
ConvTuningStats conv_tuning_stats();

}  // namespace histotrain
