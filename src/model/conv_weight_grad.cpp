#include "model/conv_weight_grad.h"

#include <algorithm>
#include <array>
#include <map>
#include <mutex>

#include "util/clock.h"

namespace histotrain {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

enum class WeightGradWay { native, gemm };

// im2col columns beyond this are not worth trying: large maps are where LibTorch's own kernel is
// fast, and the columns (9x the input for a 3x3 kernel, copied once more) would cost memory.
constexpr int64_t kMostColumnBytes = int64_t{64} << 20;

// A shape's choice: the way, per input shape, weight shape, stride and thread count (the timings
// depend on all of them). Process-wide: it is a property of this process's kernels.
class WeightGradChoices {
 public:
  using Key = std::array<int64_t, 8>;

  bool find(const Key& key, WeightGradWay& way) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = choices_.find(key);
    if (it == choices_.end()) return false;
    way = it->second;
    return true;
  }
  void record(const Key& key, WeightGradWay way, double seconds) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!choices_.emplace(key, way).second) return;
    (way == WeightGradWay::gemm ? stats_.gemm_shapes : stats_.native_shapes) += 1;
    stats_.tuning_seconds += seconds;
  }
  ConvTuningStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

 private:
  std::mutex mutex_;
  std::map<Key, WeightGradWay> choices_;
  ConvTuningStats stats_;
};

WeightGradChoices& choices() {
  static WeightGradChoices instance;
  return instance;
}

struct ConvGeometry {
  int64_t stride, padding;
};

using Grads = std::pair<torch::Tensor, torch::Tensor>;  // input, weight (undefined if not wanted)

Grads native_grads(const torch::Tensor& g, const torch::Tensor& x, const torch::Tensor& w, ConvGeometry c,
                   bool input_grad) {
  auto grads = at::convolution_backward(g, x, w, c10::nullopt, {c.stride, c.stride}, {c.padding, c.padding},
                                        {1, 1}, false, {0, 0}, 1, {input_grad, true, false});
  return {std::get<0>(grads), std::get<1>(grads)};
}

Grads gemm_grads(const torch::Tensor& g, const torch::Tensor& x, const torch::Tensor& w, ConvGeometry c,
                 bool input_grad) {
  torch::Tensor gx;
  if (input_grad) {
    gx = std::get<0>(at::convolution_backward(g, x, w, c10::nullopt, {c.stride, c.stride}, {c.padding, c.padding},
                                              {1, 1}, false, {0, 0}, 1, {true, false, false}));
  }
  return {gx, conv_weight_grad_by_gemm(g, x, w, c.stride, c.padding)};
}

// Both ways, twice each (the first of each pays for allocations and kernel set-up); the faster
// second run wins. Returns the winner's gradients.
Grads tune(const WeightGradChoices::Key& key, const torch::Tensor& g, const torch::Tensor& x,
           const torch::Tensor& w, ConvGeometry c, bool input_grad) {
  const auto start = Clock::now();
  Grads native, gemm;
  double native_s = 0, gemm_s = 0;
  for (int round = 0; round < 2; ++round) {
    const auto t0 = Clock::now();
    native = native_grads(g, x, w, c, input_grad);
    const auto t1 = Clock::now();
    gemm = gemm_grads(g, x, w, c, input_grad);
    native_s = seconds_between(t0, t1);
    gemm_s = seconds_since(t1);
  }
  const WeightGradWay way = gemm_s < native_s ? WeightGradWay::gemm : WeightGradWay::native;
  choices().record(key, way, seconds_since(start));
  return way == WeightGradWay::gemm ? gemm : native;
}

struct TunedConv2d : torch::autograd::Function<TunedConv2d> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& w, int64_t stride,
                               int64_t padding) {
    ctx->save_for_backward({x, w});
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    return at::conv2d(x, w, {}, {stride, stride}, {padding, padding});
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& w = saved[1];
    const torch::Tensor g = grad_outputs[0].contiguous();
    const ConvGeometry c{ctx->saved_data["stride"].toInt(), ctx->saved_data["padding"].toInt()};
    const bool input_grad = ctx->needs_input_grad(0);
    const WeightGradChoices::Key key{x.size(0), x.size(1), x.size(2), x.size(3), w.size(0), w.size(2), c.stride,
                                     static_cast<int64_t>(at::get_num_threads())};
    const int64_t column_bytes = x.size(0) * w.size(1) * w.size(2) * w.size(3) * g.size(2) * g.size(3) *
                                 static_cast<int64_t>(sizeof(float));
    WeightGradWay way = WeightGradWay::native;
    Grads grads;
    if (column_bytes > kMostColumnBytes) {
      grads = native_grads(g, x, w, c, input_grad);
    } else if (!choices().find(key, way)) {
      grads = tune(key, g, x, w, c, input_grad);
    } else {
      grads = way == WeightGradWay::gemm ? gemm_grads(g, x, w, c, input_grad) : native_grads(g, x, w, c, input_grad);
    }
    return {grads.first, grads.second, torch::Tensor(), torch::Tensor()};
  }
};

bool gemm_covers(const torch::nn::Conv2dImpl& conv, const torch::Tensor& x) {
  const auto& o = conv.options;
  const torch::Tensor& w = conv.weight;
  return torch::GradMode::is_enabled() && w.requires_grad() && !conv.bias.defined() && x.device().is_cpu() &&
         x.scalar_type() == torch::kFloat && w.scalar_type() == torch::kFloat && x.dim() == 4 &&
         x.is_contiguous() && w.is_contiguous() && o.groups() == 1 && (*o.dilation())[0] == 1 &&
         (*o.dilation())[1] == 1 && (*o.stride())[0] == (*o.stride())[1] && w.size(2) == w.size(3);
}

}  // namespace

torch::Tensor conv_weight_grad_by_gemm(const torch::Tensor& grad_out, const torch::Tensor& x,
                                       const torch::Tensor& weight, int64_t stride, int64_t padding) {
  const int64_t out_channels = weight.size(0), kernel = weight.size(2);
  // columns: (N, C*k*k, P) for the P output positions; as rows (N*P, C*k*k).
  const torch::Tensor columns = at::im2col(x, {kernel, kernel}, {1, 1}, {padding, padding}, {stride, stride});
  const torch::Tensor rows = columns.transpose(1, 2).reshape({-1, columns.size(1)});
  // the output gradient as (O, N*P), so that one product sums over images and positions at once.
  const torch::Tensor grad = grad_out.reshape({grad_out.size(0), out_channels, -1}).transpose(0, 1).reshape(
      {out_channels, -1});
  return grad.mm(rows).view(weight.sizes());
}

torch::Tensor conv_forward(torch::nn::Conv2dImpl& conv, const torch::Tensor& x, bool tuned) {
  if (!tuned || !gemm_covers(conv, x)) return conv.forward(x);
  const int64_t stride = (*conv.options.stride())[0];
  return TunedConv2d::apply(x, conv.weight, stride, conv.weight.size(2) / 2);
}

ConvTuningStats conv_tuning_stats() { return choices().stats(); }

}  // namespace histotrain
