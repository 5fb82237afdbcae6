#include "dist/grad_reducer.h"
#include "util/clock.h"

#include <thread>

namespace histotrain {

GradientReducer::GradientReducer(const std::vector<torch::Tensor>& parameters, Communicator& comm,
                                 size_t bucket_bytes)
    : params_(parameters), comm_(comm), bucket_of_(parameters.size()), slot_of_(parameters.size()) {
  size_t bytes = 0;
  for (size_t k = parameters.size(); k-- > 0;) {
    const auto& p = parameters[k];
    const size_t p_bytes = static_cast<size_t>(p.numel()) * p.element_size();
    if (buckets_.empty() || (bytes > 0 && bytes + p_bytes > bucket_bytes)) {
      buckets_.emplace_back();
      bytes = 0;
    }
    Bucket& b = buckets_.back();
    bucket_of_[k] = buckets_.size() - 1;
    slot_of_[k] = b.params.size();
    b.offsets.push_back(b.params.empty() ? 0 : b.offsets.back() + params_[b.params.back()].numel());
    b.params.push_back(k);
    bytes += p_bytes;
  }
  for (auto& b : buckets_) {
    const auto& last = params_[b.params.back()];
    b.flat = torch::zeros({b.offsets.back() + last.numel()}, last.options().dtype(torch::kFloat32));
  }
  for (size_t k = 0; k < params_.size(); ++k)
    hooks_.push_back(params_[k].register_hook([this, k](const torch::Tensor& grad) { on_gradient(k, grad); }));
  reset_for_next_step();
}

GradientReducer::~GradientReducer() {
  for (size_t k = 0; k < params_.size(); ++k) params_[k].remove_hook(hooks_[k]);
}

void GradientReducer::reset_for_next_step() {
  for (auto& b : buckets_) {
    b.pending = b.params.size();
    b.work.reset();
  }
  next_to_start_ = 0;
  started_during_backward_ = 0;
}

void GradientReducer::on_gradient(size_t param, const torch::Tensor& grad) {
  std::lock_guard<std::mutex> lock(mutex_);
  Bucket& b = buckets_[bucket_of_[param]];
  const size_t slot = slot_of_[param];
  // reshape(-1) gives the logical (NCHW) order also for channels-last gradients.
  b.flat.narrow(0, b.offsets[slot], grad.numel()).copy_(grad.detach().reshape(-1));
  --b.pending;
  start_ready_buckets();
  started_during_backward_ = next_to_start_;
}

size_t GradientReducer::done_count() {
  std::lock_guard<std::mutex> lock(done_mutex_);
  return done_count_;
}

void GradientReducer::start_ready_buckets() {
  while (next_to_start_ < buckets_.size() && buckets_[next_to_start_].pending == 0) {
    Bucket& b = buckets_[next_to_start_++];
    if (next_to_start_ == 1) first_start_ = std::chrono::steady_clock::now();
    b.work = comm_.all_reduce_sum_async(b.flat);
    // Completion times, for the overlap figures (the callback runs on the backend's thread).
    b.work->getFuture()->addCallback([this](c10::ivalue::Future&) {
      std::lock_guard<std::mutex> lock(done_mutex_);
      last_done_ = std::max(last_done_, std::chrono::steady_clock::now());
      ++done_count_;
    });
  }
}

void GradientReducer::finish() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // A parameter that took no part in this forward never reports: its slot stays zero, and the
    // remaining buckets start now, still in order.
    for (size_t i = next_to_start_; i < buckets_.size(); ++i) {
      Bucket& b = buckets_[i];
      if (b.pending > 0) {
        for (size_t s = 0; s < b.params.size(); ++s)
          if (!params_[b.params[s]].grad().defined()) b.flat.narrow(0, b.offsets[s], params_[b.params[s]].numel()).zero_();
        b.pending = 0;
      }
    }
    start_ready_buckets();
  }
  const double inverse_world = 1.0 / comm_.world_size();
  torch::NoGradGuard no_grad;
  for (auto& b : buckets_) {
    comm_.wait(b.work, "gradient all-reduce");
    b.flat.mul_(inverse_world);
    for (size_t s = 0; s < b.params.size(); ++s) {
      auto& p = params_[b.params[s]];
      const auto averaged = b.flat.narrow(0, b.offsets[s], p.numel()).view(p.sizes());
      if (p.grad().defined())
        p.mutable_grad().copy_(averaged);
      else
        p.mutable_grad() = averaged.clone().contiguous(p.suggest_memory_format());
    }
  }
  // A future wakes its waiters before it runs its callbacks: give the last ones a moment.
  for (int i = 0; i < 1000 && done_count() < buckets_.size(); ++i) std::this_thread::yield();
  {
    std::lock_guard<std::mutex> lock(done_mutex_);
    last_span_s_ = seconds_between(first_start_, last_done_);
    last_done_ = {};
    done_count_ = 0;
  }
  const size_t overlapped = started_during_backward_;
  reset_for_next_step();
  started_during_backward_ = overlapped;
}

}  // namespace histotrain
