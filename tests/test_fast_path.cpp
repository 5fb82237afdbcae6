// The pieces of the fast training path: the multi-tensor and one-pass CPU optimizer updates, the
// weight average, test-time augmentation, the CUDA-graph step (on CUDA only) and their flags end to end.
#include <gtest/gtest.h>

#include "core/compat.h"
#include "core/evaluate.h"
#include "core/weight_average.h"
#include "data/batches.h"
#include "model/resnet.h"
#include "test_util.h"
#include "train/config.h"
#include "train/graphed_step.h"
#include "train/optimizer.h"
#include "util/files.h"

namespace histotrain {
namespace {

using testing::read_json;
using testing::run_histotrain;
using testing::ScratchDir;

OptimConfig small_config() {
  OptimConfig c;
  c.lr = 0.1;
  c.weight_decay = 0.01;
  return c;
}

// One forward/backward on a fixed batch, for two models that must stay equal.
void backward_on(ResNet& model, const torch::Tensor& images, const torch::Tensor& labels) {
  torch::nn::functional::cross_entropy(model->forward(images), labels).backward();
}

ResNet copy_of(ResNet& model) {
  ResNet copy(model->arch, model->fc->options.out_features());
  torch::NoGradGuard no_grad;
  auto to = copy->parameters(), from = model->parameters();
  for (size_t i = 0; i < to.size(); ++i) to[i].copy_(from[i]);
  auto tb = copy->buffers(), fb = model->buffers();
  for (size_t i = 0; i < tb.size(); ++i) tb[i].copy_(fb[i]);
  return copy;
}

TEST(FastPath, MultiTensorSgdMatchesTorchSgd) {
  torch::manual_seed(1);
  ResNet reference("resnet18", 3);
  ResNet multi = copy_of(reference), with_tensor_lr = copy_of(reference);
  const OptimConfig c = small_config();
  auto reference_opt = make_optimizer(reference, c);
  auto multi_opt = make_optimizer(multi, c);
  auto tensor_opt = make_optimizer(with_tensor_lr, c);
  const torch::Tensor neg_lr = torch::full({}, -c.lr);
  for (int step = 0; step < 3; ++step) {
    const auto images = torch::randn({4, 3, 32, 32});
    const auto labels = torch::randint(0, 3, {4}, torch::kLong);
    for (auto* opt : {reference_opt.get(), multi_opt.get(), tensor_opt.get()}) clear_gradients(*opt);
    backward_on(reference, images, labels);
    backward_on(multi, images, labels);
    backward_on(with_tensor_lr, images, labels);
    reference_opt->step();
    multi_tensor_sgd_step(*multi_opt);
    multi_tensor_sgd_step(*tensor_opt, neg_lr);
  }
  const auto r = reference->parameters(), m = multi->parameters(), t = with_tensor_lr->parameters();
  for (size_t i = 0; i < r.size(); ++i) {
    EXPECT_TRUE(torch::allclose(m[i], r[i], 1e-5, 1e-6)) << "parameter " << i;
    EXPECT_TRUE(torch::allclose(t[i], r[i], 1e-5, 1e-6)) << "parameter " << i << " (lr as a tensor)";
  }
}

// The one-pass CPU update against SGD::step() with and without (Nesterov) momentum, on tensors
// large enough to be split over threads, channels-last, and with a gradient laid out unlike its
// parameter (updated by ATen's ops instead).
TEST(FastPath, CpuSgdStepMatchesTorchSgd) {
  struct Momentum {
    double momentum;
    bool nesterov;
  };
  for (const Momentum m : {Momentum{0.9, true}, Momentum{0.9, false}, Momentum{0, false}}) {
    torch::manual_seed(3);
    const std::vector<torch::Tensor> start = {torch::randn({64, 32, 3, 3}), torch::randn({100001}),
                                              torch::randn({8, 4, 3, 3}).contiguous(torch::MemoryFormat::ChannelsLast),
                                              torch::randn({5, 7})};
    std::vector<torch::Tensor> reference, fused;
    for (const auto& t : start) {
      reference.push_back(t.clone());
      fused.push_back(t.clone());
    }
    const auto options = torch::optim::SGDOptions(0.1).momentum(m.momentum).nesterov(m.nesterov).weight_decay(0.01);
    torch::optim::SGD reference_opt(reference, options), fused_opt(fused, options);
    for (int step = 0; step < 3; ++step) {
      for (size_t i = 0; i < start.size(); ++i) {
        const torch::Tensor g = torch::randn_like(start[i]);
        reference[i].mutable_grad() = g.clone();
        // The last gradient is the transpose's copy: same values, other strides.
        fused[i].mutable_grad() = i + 1 == start.size() ? g.t().contiguous().t() : g.clone();
      }
      reference_opt.step();
      cpu_sgd_step(fused_opt);
    }
    for (size_t i = 0; i < start.size(); ++i) {
      EXPECT_TRUE(torch::allclose(fused[i], reference[i], 1e-5, 1e-6))
          << "tensor " << i << ", momentum " << m.momentum << ", Nesterov " << m.nesterov;
      EXPECT_FALSE(torch::equal(fused[i], start[i])) << "tensor " << i << " was updated";
    }
  }
}

TEST(FastPath, WeightAverageRampsUpThenFollowsTheDecay) {
  torch::manual_seed(2);
  ResNet model("resnet18", 3);
  WeightAverage average(model, 0.99);
  EXPECT_NEAR(average.decay_at(0), 0.1, 1e-12);  // (1 + 0) / (10 + 0): the start is forgotten fast
  EXPECT_NEAR(average.decay_at(10000), 0.99, 1e-12);
  const torch::Tensor before = average.model()->fc->weight.clone();
  EXPECT_TRUE(torch::equal(before, model->fc->weight)) << "the average starts as a copy";
  {
    torch::NoGradGuard no_grad;
    model->fc->weight.add_(1.0);
  }
  average.update(0);  // 0.1 * old + 0.9 * new
  EXPECT_TRUE(torch::allclose(average.model()->fc->weight, before + 0.9, 1e-5, 1e-6));
  average.update(torch::full({}, 0.5));  // half-way to the model
  EXPECT_TRUE(torch::allclose(average.model()->fc->weight, before + 0.95, 1e-5, 1e-6));
  EXPECT_FALSE(average.model()->fc->weight.requires_grad());
}

TEST(FastPath, DihedralViewsAreTheEightSymmetries) {
  const auto image = torch::arange(2 * 3 * 5 * 5, torch::kFloat32).view({2, 3, 5, 5});
  std::vector<torch::Tensor> views;
  for (int s = 0; s < 8; ++s) views.push_back(dihedral_view(image, s));
  for (int a = 0; a < 8; ++a)
    for (int b = a + 1; b < 8; ++b) EXPECT_FALSE(torch::equal(views[a], views[b])) << a << " and " << b;
  EXPECT_TRUE(torch::equal(views[0], image));
  // Each view moves pixels, never changes them.
  for (const auto& v : views) EXPECT_TRUE(torch::equal(std::get<0>(v.flatten().sort()), image.flatten()));
}

// Relative difference of two tensors: |a - b| / |b|.
double relative_difference(const torch::Tensor& a, const torch::Tensor& b) {
  const auto x = a.to(torch::kFloat64).cpu(), y = b.to(torch::kFloat64).cpu();
  return (x - y).norm().item<double>() / std::max(1e-12, y.norm().item<double>());
}

// Trains `static_model` through a GraphedTrainStep (captured or not) and `eager_model` with the
// trainer's eager step on the same batches; returns the largest relative difference of any
// parameter or floating-point buffer afterwards.
double static_step_versus_eager(torch::Device device, bool capture) {
  torch::manual_seed(3);
  ResNet eager("resnet18", 3);
  ResNet graphed = copy_of(eager);
  eager->to(device);
  graphed->to(device);
  const OptimConfig c = small_config();
  auto eager_opt = make_optimizer(eager, c);
  auto graph_opt = make_optimizer(graphed, c);
  WeightAverage eager_average(eager, 0.9), graph_average(graphed, 0.9);
  std::vector<Batch> batches;
  const auto long_options = torch::TensorOptions().dtype(torch::kLong).device(device);
  for (int i = 0; i < 4; ++i) batches.push_back({torch::randn({8, 3, 32, 32}, device), torch::randint(0, 3, {8}, long_options)});
  GraphedTrainStep step(graphed, *graph_opt, Precision::fp32, LossOptions{0.1, {}}, &graph_average, batches[0], capture);
  torch::Tensor eager_loss = torch::zeros({}, device);
  for (size_t i = 0; i < batches.size(); ++i) {
    const Batch& b = batches[i];
    clear_gradients(*eager_opt);
    const auto loss = torch::nn::functional::cross_entropy(
        eager->forward(b.images), b.labels, torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(0.1));
    loss.backward();
    multi_tensor_sgd_step(*eager_opt);
    eager_average.update(static_cast<int64_t>(i));
    eager_loss += loss.detach();
    step.step(b, c.lr, 1 - graph_average.decay_at(static_cast<int64_t>(i)));
  }
  double worst = relative_difference(step.loss_sum(), eager_loss);
  const auto compare = [&](ResNet& a, ResNet& b) {
    const auto pa = a->parameters(), pb = b->parameters();
    for (size_t i = 0; i < pa.size(); ++i) worst = std::max(worst, relative_difference(pa[i], pb[i]));
    const auto ba = a->buffers(), bb = b->buffers();
    for (size_t i = 0; i < ba.size(); ++i)
      if (ba[i].is_floating_point()) worst = std::max(worst, relative_difference(ba[i], bb[i]));
      else EXPECT_TRUE(torch::equal(ba[i].cpu(), bb[i].cpu())) << "counter " << i;
  };
  compare(graphed, eager);
  compare(graph_average.model(), eager_average.model());
  return worst;
}

// The step a CUDA graph holds (static buffers, learning rate and average share read from tensors,
// warm-up undone), run eagerly: the same weights, statistics, average and loss as the trainer's
// eager loop.
TEST(FastPath, StaticStepMatchesTheEagerLoop) {
  EXPECT_LT(static_step_versus_eager(torch::kCPU, /*capture=*/false), 1e-5);
}

// The captured graph replays that step. TF32 is off and cuDNN deterministic, so that the two
// models differ by rounding only.
TEST(FastPath, CudaGraphStepMatchesTheEagerStep) {
  if (!GraphedTrainStep::available() || !compat::cuda_available()) GTEST_SKIP() << "needs a CUDA LibTorch 2.x";
  auto& context = at::globalContext();
  const bool tf32_conv = context.allowTF32CuDNN(), tf32_matmul = context.allowTF32CuBLAS();
  const bool deterministic = context.deterministicCuDNN(), benchmark = context.benchmarkCuDNN();
  context.setAllowTF32CuDNN(false);
  context.setAllowTF32CuBLAS(false);
  context.setDeterministicCuDNN(true);
  context.setBenchmarkCuDNN(false);
  const double worst = static_step_versus_eager(torch::kCUDA, /*capture=*/true);
  context.setAllowTF32CuDNN(tf32_conv);
  context.setAllowTF32CuBLAS(tf32_matmul);
  context.setDeterministicCuDNN(deterministic);
  context.setBenchmarkCuDNN(benchmark);
  EXPECT_LT(worst, 1e-4);
}

}  // namespace
}  // namespace histotrain
