#include "distributed/grad_reducer.h"
#include "util/clock.h"

#include <algorithm>
#include <limits>
#include <thread>

namespace histotrain {

namespace {

constexpr size_t kNoBucket = std::numeric_limits<size_t>::max();


}  // namespace

GradientReducer::GradientReducer(const std::vector<torch::Tensor>& parameters, Communicator& comm,
                                 size_t bucket_bytes, GradCompression compression, uint64_t seed)
    : params_(parameters),
      comm_(comm),
      compression_(compression),
      bucket_of_(parameters.size(), kNoBucket),
      slot_of_(parameters.size()) {
  by_gather_ = sixteen_bit_by_gather(compression.kind, comm.backend(), comm.world_size());
  std::vector<bool> compressed(parameters.size(), false);
  matrix_of_.assign(parameters.size(), 0);
  if (compression.kind == CompressionKind::powersgd)
    for (size_t k = 0; k < parameters.size(); ++k)
      if ((compressed[k] = powersgd_compresses(parameters[k].sizes().vec(), compression.rank))) {
        matrix_of_[k] = matrices_.size();
        matrices_.push_back(parameters[k]);
      }
  // Two groups: the first half of the values (the last layers, whose gradients come first)
  // leaves during backward; more groups would each pay the link's latency twice.
  if (!matrices_.empty()) power_sgd_ = std::make_unique<PowerSgd>(matrices_, compression.rank, seed, /*groups=*/2);
  size_t bytes = 0;
  for (size_t k = parameters.size(); k-- > 0;) {
    if (compressed[k]) continue;
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
    if (compression.kind == CompressionKind::fp16) b.wire = torch::empty_like(b.flat, b.flat.options().dtype(torch::kHalf));
    if (compression.kind == CompressionKind::bf16) b.wire = torch::empty_like(b.flat, b.flat.options().dtype(torch::kBFloat16));
    if (by_gather_)
      for (int r = 0; r < comm.world_size(); ++r) b.gathered.push_back(torch::empty_like(b.wire));
  }
  for (size_t k = 0; k < params_.size(); ++k)
    hooks_.emplace_back(k, params_[k].register_hook([this, k](const torch::Tensor& grad) { on_gradient(k, grad); }));
  reset_for_next_step();
}

GradientReducer::~GradientReducer() {
  for (const auto& [k, hook] : hooks_) params_[k].remove_hook(hook);
}

Communicator::Work GradientReducer::start_bucket(Bucket& b) {
  b.started = Clock::now();
  switch (compression_.kind) {
    case CompressionKind::fp16:
      b.flat.mul_(1.0 / comm_.world_size());  // before the cast: the sum of the halves cannot overflow
      b.wire.copy_(b.flat);
      break;
    case CompressionKind::bf16:
      b.wire.copy_(b.flat);
      break;
    default:
      return comm_.all_reduce_sum_async(b.flat);
  }
  compression_s_ += seconds_since(b.started);
  return by_gather_ ? comm_.all_gather_async(b.gathered, b.wire) : comm_.all_reduce_sum_async(b.wire);
}

void GradientReducer::finish_bucket(Bucket& b) {
  const auto start = Clock::now();
  const bool sixteen_bit = compression_.kind == CompressionKind::fp16 || compression_.kind == CompressionKind::bf16;
  if (by_gather_) {
    b.flat.zero_();
    for (const auto& part : b.gathered) b.flat.add_(part);  // in rank order: the same sum on every rank
  } else if (sixteen_bit) {
    b.flat.copy_(b.wire);
  }
  if (sixteen_bit) compression_s_ += seconds_since(start);
  if (compression_.kind != CompressionKind::fp16) b.flat.mul_(1.0 / comm_.world_size());  // fp16: divided before
}

// PowerSGD's matrices, after every bucket has started (the same order of collectives on every
// rank): compressed from the start step on (groups whose gradients were all in have started in
// the hooks), before it one flat uncompressed all-reduce.
void GradientReducer::reduce_matrices() {
  torch::NoGradGuard no_grad;
  if (steps_ >= compression_.start_step) {
    for (; next_group_ < power_sgd_->groups(); ++next_group_) {
      power_sgd_->add_missing_gradients(next_group_);  // matrices that took no part in this forward
      power_sgd_->start_p(comm_, next_group_);
    }
    for (; next_q_group_ < power_sgd_->groups(); ++next_q_group_) power_sgd_->start_q(comm_, next_q_group_);
    for (size_t g = 0; g < power_sgd_->groups(); ++g) power_sgd_->finish(comm_, g);
    compression_s_ += power_sgd_->last_arithmetic_seconds();
    return;
  }
  for (auto& p : matrices_)
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);  // took no part in this forward
  std::vector<torch::Tensor> parts;
  for (auto& p : matrices_) parts.push_back(p.grad().reshape(-1).to(torch::kFloat32));
  torch::Tensor flat = torch::cat(parts);
  comm_.all_reduce_sum(flat);
  flat.div_(comm_.world_size());
  int64_t offset = 0;
  for (auto& p : matrices_) {
    p.mutable_grad().copy_(flat.narrow(0, offset, p.numel()).view(p.sizes()));
    offset += p.numel();
  }
}

void GradientReducer::start_ready_groups() {
  while (next_group_ < power_sgd_->groups() && power_sgd_->group_complete(next_group_))
    power_sgd_->start_p(comm_, next_group_++);
}

void GradientReducer::start_due_q_factors() {
  while (next_q_group_ < next_group_ && next_q_group_ + 1 < power_sgd_->groups() &&
         power_sgd_->group_half_in(next_q_group_ + 1))
    power_sgd_->start_q(comm_, next_q_group_++);
}

void GradientReducer::reset_for_next_step() {
  for (auto& b : buckets_) {
    b.pending = b.params.size();
    b.work.reset();
  }
  next_to_start_ = 0;
  held_before_ = false;
  next_group_ = 0;
  next_q_group_ = 0;
  started_during_backward_ = 0;
}

void GradientReducer::hold(bool holding) {
  std::lock_guard<std::mutex> lock(mutex_);
  holding_ = holding;
  if (holding) held_before_ = true;
}

// A hook runs before autograd adds `grad` to the parameter's .grad: that .grad holds the sum of
// the step's earlier (held) backward passes.
torch::Tensor GradientReducer::step_gradient(size_t param, const torch::Tensor& grad) const {
  const torch::Tensor& earlier = params_[param].grad();
  if (!held_before_ || !earlier.defined()) return grad.detach();
  return grad.detach() + earlier;
}

void GradientReducer::on_gradient(size_t param, const torch::Tensor& grad) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (holding_) return;
  if (bucket_of_[param] == kNoBucket) {  // PowerSGD's; before its start step all done in finish()
    if (steps_ < compression_.start_step) return;
    if (power_sgd_->add_gradient(matrix_of_[param], step_gradient(param, grad))) start_ready_groups();
    start_due_q_factors();
    return;
  }
  Bucket& b = buckets_[bucket_of_[param]];
  const size_t slot = slot_of_[param];
  // reshape(-1) gives the logical (NCHW) order also for channels-last gradients.
  b.flat.narrow(0, b.offsets[slot], grad.numel()).copy_(step_gradient(param, grad).reshape(-1));
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
    b.work = start_bucket(b);
    // Completion times, for the overlap figures (the callback runs on the backend's thread).
    b.work->getFuture()->addCallback([this](c10::ivalue::Future&) {
      std::lock_guard<std::mutex> lock(done_mutex_);
      last_done_ = std::max(last_done_, std::chrono::steady_clock::now());
      ++done_count_;
    });
  }
}

void GradientReducer::finish() {
  last_compression_during_backward_s_ = compression_s_ + (power_sgd_ ? power_sgd_->arithmetic_so_far() : 0.0);
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
  if (!matrices_.empty()) reduce_matrices();
  torch::NoGradGuard no_grad;
  for (auto& b : buckets_) {
    comm_.wait(b.work, "gradient all-reduce");
    finish_bucket(b);
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
  last_compression_s_ = compression_s_;
  compression_s_ = 0;
  const size_t overlapped = started_during_backward_;
  reset_for_next_step();
  started_during_backward_ = overlapped;
  ++steps_;
}

}  // namespace histotrain
