#include "train/graphed_step.h"

#include "core/compat.h"
#include "core/loss.h"
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

namespace {

// Everything a warm-up step changes although the learning rate is zero: BatchNorm statistics
// and momentum buffers. Saved before the warm-up and put back after it.
struct SavedState {
  std::vector<torch::Tensor> buffers;
  std::map<const void*, torch::Tensor> momentum;
};

torch::Tensor* momentum_buffer(torch::optim::SGD& optimizer, const torch::Tensor& p) {
  auto found = optimizer.state().find(compat::optimizer_state_key(optimizer.state(), p));
  if (found == optimizer.state().end()) return nullptr;
  return &static_cast<torch::optim::SGDParamState&>(*found->second).momentum_buffer();
}

SavedState save_state(ResNet& model, torch::optim::SGD& optimizer) {
  SavedState saved;
  for (auto& b : model->buffers()) saved.buffers.push_back(b.clone());
  for (auto& group : optimizer.param_groups())
    for (auto& p : group.params())
      if (const torch::Tensor* buffer = momentum_buffer(optimizer, p))
        saved.momentum[p.unsafeGetTensorImpl()] = buffer->clone();
  return saved;
}

void restore_state(ResNet& model, torch::optim::SGD& optimizer, const SavedState& saved) {
  torch::NoGradGuard no_grad;
  auto buffers = model->buffers();
  for (size_t i = 0; i < buffers.size(); ++i) buffers[i].copy_(saved.buffers[i]);
  for (auto& group : optimizer.param_groups())
    for (auto& p : group.params()) {
      torch::Tensor* buffer = momentum_buffer(optimizer, p);
      if (!buffer) continue;
      const auto before = saved.momentum.find(p.unsafeGetTensorImpl());
      before == saved.momentum.end() ? buffer->zero_() : buffer->copy_(before->second);  // zero: as if never created
    }
}

LossOptions on_device(LossOptions options, const torch::Device& device) {
  if (options.class_weights.defined()) options.class_weights = options.class_weights.to(device);
  return options;
}

}  // namespace

struct GraphedTrainStep::Impl {
  ResNet model;
  torch::optim::SGD& optimizer;
  Precision precision;
  LossOptions loss_options;  // its class weights on the graph's device: nothing is copied in the graph
  WeightAverage* average;
  // Static tensors the graph reads and writes: their addresses are baked into it.
  torch::Tensor images, labels, neg_lr, average_share, loss_sum, correct;
#ifdef HISTOTRAIN_CUDA_GRAPHS
  std::unique_ptr<at::cuda::CUDAGraph> graph;  // null: the step runs eagerly
#endif

  Impl(ResNet m, torch::optim::SGD& o, Precision p, const LossOptions& loss, WeightAverage* a, const Batch& example)
      : model(std::move(m)),
        optimizer(o),
        precision(p),
        loss_options(on_device(loss, example.images.device())),
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
    const LossAndCorrect loss = classification_loss(logits, labels, loss_options);
    loss.loss.backward();
    multi_tensor_sgd_step(optimizer, neg_lr);
    if (average) average->update(average_share);
    torch::NoGradGuard no_grad;
    loss_sum.add_(loss.loss.detach());
    correct.add_(loss.correct);
  }

  void warm_up() {
    for (int i = 0; i < 3; ++i) {
      clear_gradients(optimizer);
      train_step();
    }
    // Gradients start undefined so that backward allocates them inside the graph's own memory
    // pool, and each replay overwrites them instead of adding to them.
    clear_gradients(optimizer);
  }

  // Three warm-up steps with the learning rate at zero (cuDNN picks its kernels, the allocator
  // settles), the capture, then the state as it was before the warm-up.
  void prepare(bool capture) {
    const SavedState saved = save_state(model, optimizer);
    if (capture)
      warm_up_and_capture(saved);
    else
      warm_up();
    restore_state(model, optimizer, saved);
    loss_sum.zero_();
    correct.zero_();
  }

  void replay() {
#ifdef HISTOTRAIN_CUDA_GRAPHS
    if (graph) return graph->replay();
#endif
    clear_gradients(optimizer);
    train_step();
  }

#ifdef HISTOTRAIN_CUDA_GRAPHS
  void warm_up_and_capture(const SavedState& saved) {
    const auto caller = c10::cuda::getCurrentCUDAStream();
    const auto side = c10::cuda::getStreamFromPool();
    at::cuda::CUDAEvent ready;
    ready.record(caller);
    ready.block(side);
    // Capture must run on a stream other than the default one; warm up on the same stream.
    c10::cuda::CUDAStreamGuard on_side(side);
    at::autocast::set_autocast_cache_enabled(false);  // cached casts would outlive the capture
    warm_up();
    graph = std::make_unique<at::cuda::CUDAGraph>();
    bool capturing = false;
    try {
      graph->capture_begin();
      capturing = true;
      train_step();
      capturing = false;
      graph->capture_end();
    } catch (...) {  // leave the model as it was, so that the caller may go on without a graph
      if (capturing) {
        try {
          graph->capture_end();  // the stream must leave capture mode before it can run kernels again
        } catch (...) {
        }
      }
      graph.reset();
      at::autocast::set_autocast_cache_enabled(true);
      clear_gradients(optimizer);
      side.synchronize();
      restore_state(model, optimizer, saved);
      throw;
    }
    at::autocast::set_autocast_cache_enabled(true);
    at::cuda::CUDAEvent captured;
    captured.record(side);
    captured.block(caller);
  }
#else
  void warm_up_and_capture(const SavedState&) {
    throw Error("CUDA graphs need histotrain built against a CUDA LibTorch 2.x (this build: LibTorch " +
                compat::torch_version() + (compat::built_with_cuda() ? ", graphs compiled out)" : ", no CUDA)"));
  }
#endif
};

bool GraphedTrainStep::available() {
#ifdef HISTOTRAIN_CUDA_GRAPHS
  return true;
#else
  return false;
#endif
}

GraphedTrainStep::GraphedTrainStep(ResNet model, torch::optim::SGD& optimizer, Precision precision,
                                   const LossOptions& loss_options, WeightAverage* average, const Batch& example, bool capture)
    : impl_(std::make_unique<Impl>(std::move(model), optimizer, precision, loss_options, average, example)) {
  if (capture && !impl_->images.is_cuda()) throw Error("a CUDA graph needs the batch on a CUDA device");
  if (capture && precision == Precision::fp16)
    throw Error("a CUDA graph cannot hold fp16 loss scaling (its steps may be skipped)");
  impl_->prepare(capture);
}

void GraphedTrainStep::step(const Batch& batch, double lr, double average_share) {
  impl_->images.copy_(batch.images, /*non_blocking=*/true);
  impl_->labels.copy_(batch.labels, /*non_blocking=*/true);
  impl_->neg_lr.fill_(-lr);
  impl_->average_share.fill_(average_share);
  impl_->replay();
}

torch::Tensor GraphedTrainStep::loss_sum() const { return impl_->loss_sum; }
torch::Tensor GraphedTrainStep::correct() const { return impl_->correct; }
void GraphedTrainStep::reset_sums() {
  impl_->loss_sum.zero_();
  impl_->correct.zero_();
}

GraphedTrainStep::~GraphedTrainStep() = default;

}  // namespace histotrain
