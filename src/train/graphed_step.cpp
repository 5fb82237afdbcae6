#include "train/graphed_step.h"

#include "compat.h"
#include "util/errors.h"

#if defined(HISTOTRAIN_WITH_CUDA) && HISTOTRAIN_TORCH_AT_LEAST(2, 0) && !defined(HISTOTRAIN_NO_CUDA_GRAPHS)
#define HISTOTRAIN_CUDA_GRAPHS 1
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <map>

#include "train/optimizer.h"

namespace histotrain {

#ifdef HISTOTRAIN_CUDA_GRAPHS

struct GraphedTrainStep::Impl {
  ResNet model;
  torch::optim::SGD& optimizer;
  Precision precision;
  torch::nn::functional::CrossEntropyFuncOptions loss_options;
  WeightAverage* average;
  // Static tensors the graph reads and writes: their addresses are baked into it.
  torch::Tensor images, labels, neg_lr, average_share, loss_sum, correct;
  at::cuda::CUDAGraph graph;

  Impl(ResNet m, torch::optim::SGD& o, Precision p, double smoothing, WeightAverage* a, const Batch& example)
      : model(std::move(m)),
        optimizer(o),
        precision(p),
        loss_options(torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(smoothing)),
        average(a),
        images(example.images.clone()),
        labels(example.labels.clone()) {
    const auto on_device = torch::TensorOptions().device(images.device());
    neg_lr = torch::zeros({}, on_device);
    average_share = torch::zeros({}, on_device);
    loss_sum = torch::zeros({}, on_device);
    correct = torch::zeros({}, on_device.dtype(torch::kLong));
  }

  // What the graph holds: the eager loop's step, with the learning rate and the average's share
  // read from device tensors.
  void train_step() {
    torch::Tensor logits;
    {
      AutocastScope autocast(precision, images.device());
      logits = model->forward(images);
    }
    const torch::Tensor loss = torch::nn::functional::cross_entropy(logits.to(torch::kFloat32), labels, loss_options);
    loss.backward();
    multi_tensor_sgd_step(optimizer, neg_lr);
    if (average) average->update(average_share);
    torch::NoGradGuard no_grad;
    loss_sum.add_(loss.detach());
    correct.add_((logits.argmax(1) == labels).sum());
  }

  // Everything a warm-up step changes although the learning rate is zero: BatchNorm statistics
  // and momentum buffers. Saved before the warm-up and put back after it.
  struct Saved {
    std::vector<torch::Tensor> buffers;
    std::map<const void*, torch::Tensor> momentum;
  };
  Saved save_state() {
    Saved saved;
    for (auto& b : model->buffers()) saved.buffers.push_back(b.clone());
    for (auto& group : optimizer.param_groups())
      for (auto& p : group.params()) {
        auto found = optimizer.state().find(compat::optimizer_state_key(optimizer.state(), p));
        if (found != optimizer.state().end())
          saved.momentum[p.unsafeGetTensorImpl()] =
              static_cast<torch::optim::SGDParamState&>(*found->second).momentum_buffer().clone();
      }
    return saved;
  }
  void restore_state(const Saved& saved) {
    torch::NoGradGuard no_grad;
    auto buffers = model->buffers();
    for (size_t i = 0; i < buffers.size(); ++i) buffers[i].copy_(saved.buffers[i]);
    for (auto& group : optimizer.param_groups())
      for (auto& p : group.params()) {
        auto found = optimizer.state().find(compat::optimizer_state_key(optimizer.state(), p));
        if (found == optimizer.state().end()) continue;
        torch::Tensor buffer = static_cast<torch::optim::SGDParamState&>(*found->second).momentum_buffer();
        const auto before = saved.momentum.find(p.unsafeGetTensorImpl());
        before == saved.momentum.end() ? buffer.zero_() : buffer.copy_(before->second);  // zero: as if never created
      }
  }

  void capture() {
    const Saved saved = save_state();
    const auto caller = c10::cuda::getCurrentCUDAStream();
    const auto side = c10::cuda::getStreamFromPool();
    at::cuda::CUDAEvent ready;
    ready.record(caller);
    ready.block(side);
    {
      // Capture must run on a stream other than the default one; warm up on the same stream.
      c10::cuda::CUDAStreamGuard on_side(side);
      at::autocast::set_autocast_cache_enabled(false);  // cached casts would outlive the capture
      for (int i = 0; i < 3; ++i) {
        clear_gradients(optimizer);
        train_step();
      }
      // Gradients start undefined so that backward allocates them inside the graph's own memory
      // pool, and each replay overwrites them instead of adding to them.
      clear_gradients(optimizer);
      bool capturing = false;
      try {
        graph.capture_begin();
        capturing = true;
        train_step();
        capturing = false;
        graph.capture_end();
      } catch (...) {  // leave the model as it was, so that the caller may go on without a graph
        if (capturing) {
          try {
            graph.capture_end();  // the stream must leave capture mode before it can run kernels again
          } catch (...) {
          }
        }
        at::autocast::set_autocast_cache_enabled(true);
        clear_gradients(optimizer);
        side.synchronize();
        restore_state(saved);
        throw;
      }
      at::autocast::set_autocast_cache_enabled(true);
      at::cuda::CUDAEvent captured;
      captured.record(side);
      captured.block(caller);
    }
    restore_state(saved);
    loss_sum.zero_();
    correct.zero_();
  }
};

bool GraphedTrainStep::available() { return true; }

GraphedTrainStep::GraphedTrainStep(ResNet model, torch::optim::SGD& optimizer, Precision precision,
                                   double label_smoothing, WeightAverage* average, const Batch& example)
    : impl_(std::make_unique<Impl>(std::move(model), optimizer, precision, label_smoothing, average, example)) {
  if (!impl_->images.is_cuda()) throw Error("a CUDA graph needs the batch on a CUDA device");
  if (precision == Precision::fp16) throw Error("a CUDA graph cannot hold fp16 loss scaling (its steps may be skipped)");
  impl_->capture();
}

void GraphedTrainStep::step(const Batch& batch, double lr, double average_share) {
  impl_->images.copy_(batch.images, /*non_blocking=*/true);
  impl_->labels.copy_(batch.labels, /*non_blocking=*/true);
  impl_->neg_lr.fill_(-lr);
  impl_->average_share.fill_(average_share);
  impl_->graph.replay();
}

torch::Tensor GraphedTrainStep::loss_sum() const { return impl_->loss_sum; }
torch::Tensor GraphedTrainStep::correct() const { return impl_->correct; }
void GraphedTrainStep::reset_sums() {
  impl_->loss_sum.zero_();
  impl_->correct.zero_();
}

#else  // no CUDA LibTorch 2.x: the trainer runs its eager step

struct GraphedTrainStep::Impl {};

bool GraphedTrainStep::available() { return false; }

GraphedTrainStep::GraphedTrainStep(ResNet, torch::optim::SGD&, Precision, double, WeightAverage*, const Batch&) {
  throw Error("CUDA graphs need histotrain built against a CUDA LibTorch 2.x (this build: LibTorch " +
              compat::torch_version() + (compat::cuda_available() ? ")" : ", no CUDA)"));
}

void GraphedTrainStep::step(const Batch&, double, double) {}
torch::Tensor GraphedTrainStep::loss_sum() const { return {}; }
torch::Tensor GraphedTrainStep::correct() const { return {}; }
void GraphedTrainStep::reset_sums() {}

#endif

GraphedTrainStep::~GraphedTrainStep() = default;

}  // namespace histotrain
