// Data-parallel gradient averaging that overlaps backward: parameters are packed into buckets of
// about `bucket_bytes` in the reverse of their registration order (the order backward produces
// their gradients). A gradient hook copies each gradient into its bucket; a bucket whose
// gradients are all in starts its all-reduce at once, on the backend's threads, while backward
// goes on with earlier layers. finish() waits, divides by the world size and writes the
// averaged gradients back. Buckets start strictly in index order, so every rank issues the same
// collectives in the same order.
//
// With compression (distributed/grad_compression.h) fp16 and bf16 buckets travel in half the bytes;
// with PowerSGD the matrix-shaped gradients leave the buckets: their hooks compute the P factors
// as the gradients arrive, and the first group's factors start their all-reduce while backward
// still runs; finish() completes the rest (uncompressed, all in finish(), for the first steps).
#pragma once
#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <vector>

#include "distributed/communicator.h"
#include "distributed/grad_compression.h"
#include "distributed/power_sgd.h"
#include "util/clock.h"

namespace histotrain {

class GradientReducer {
 public:
  // `seed`: PowerSGD's first factors, the same on every rank.
  GradientReducer(const std::vector<torch::Tensor>& parameters, Communicator& comm, size_t bucket_bytes,
                  GradCompression compression = {}, uint64_t seed = 0);
  ~GradientReducer();  // removes the gradient hooks
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // Call after backward: every parameter's .grad then holds the mean over ranks.
  void finish();

  // Gradient accumulation: while holding, backward passes only add to each parameter's .grad
  // (no collective starts, finish() is not called). The first backward after holding ends sends
  // each parameter's whole sum, its .grad so far plus the incoming gradient, as soon as it
  // arrives: the all-reduce still overlaps the last backward, once per update.
  void hold(bool holding);

  size_t buckets() const { return buckets_.size(); }
  // The last step's all-reduces: from the first bucket's start to the last one's completion.
  double last_allreduce_seconds() const { return last_span_s_; }
  // Buckets of the last step whose all-reduce started before backward returned (overlap).
  size_t started_during_backward() const { return started_during_backward_; }
  // When bucket k's collective started in the last step, and how many gradient values it holds
  // (buckets are in the order they start). The scaling model places each on backward's timeline.
  Clock::time_point bucket_started(size_t k) const { return buckets_[k].started; }
  int64_t bucket_values(size_t k) const { return buckets_[k].flat.numel(); }
  // The last step's compression arithmetic (casts, sums of gathered halves, PowerSGD's products),
  // on this rank's own thread: time the step spends on compression besides waiting for the link.
  double last_compression_seconds() const { return last_compression_s_; }
  // The part of it done in the gradient hooks, while backward ran (it lengthened backward; the
  // rest came after backward, in finish()).
  double last_compression_during_backward_seconds() const { return last_compression_during_backward_s_; }
  const GradCompression& compression() const { return compression_; }

  // Steps reduced so far (PowerSGD compresses from its start step on); a resumed run sets it.
  int64_t steps() const { return steps_; }
  void set_steps(int64_t steps) { steps_ = steps; }
  PowerSgd* power_sgd() { return power_sgd_.get(); }
  const PowerSgd* power_sgd() const { return power_sgd_.get(); }

 private:
  struct Bucket {
    std::vector<size_t> params;
    std::vector<int64_t> offsets;
    torch::Tensor flat;
    torch::Tensor wire;                   // fp16 / bf16: what travels
    std::vector<torch::Tensor> gathered;  // 16-bit by all-gather: every rank's wire
    size_t pending = 0;
    Communicator::Work work;
    Clock::time_point started;
  };
  Communicator::Work start_bucket(Bucket& b);
  void finish_bucket(Bucket& b);          // after its collective: the mean over ranks in b.flat
  void reduce_matrices();                 // PowerSGD's matrices: compressed, or flat in early steps
  void start_ready_groups();              // PowerSGD's groups whose gradients are in, in order
  // PowerSGD: group g's Q factors once group g + 1 is half in (its P sum has had the time to
  // arrive), so that they travel while backward still runs.
  void start_due_q_factors();
  void on_gradient(size_t param, const torch::Tensor& grad);
  // The gradient to reduce: `grad`, plus what earlier backward passes of this step accumulated.
  torch::Tensor step_gradient(size_t param, const torch::Tensor& grad) const;
  void start_ready_buckets();  // caller holds mutex_
  void reset_for_next_step();
  size_t done_count();

  std::vector<torch::Tensor> params_;
  Communicator& comm_;
  GradCompression compression_;
  bool by_gather_ = false;               // 16-bit buckets by all-gather, summed here (Gloo)
  std::vector<torch::Tensor> matrices_;  // PowerSGD: the parameters it compresses (not bucketed)
  std::vector<size_t> matrix_of_;        // per parameter: its index in matrices_
  size_t next_group_ = 0;                // PowerSGD: the next group whose P factors start
  size_t next_q_group_ = 0;              // PowerSGD: the next group whose Q factors start
  std::unique_ptr<PowerSgd> power_sgd_;
  int64_t steps_ = 0;
  bool holding_ = false;       // accumulating: the hooks let autograd add to .grad
  bool held_before_ = false;   // this step's .grad holds earlier backward passes' sums
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;  // per parameter (kNoBucket: PowerSGD's)
  std::vector<size_t> slot_of_;    // index inside its bucket
  std::vector<std::pair<size_t, unsigned>> hooks_;  // (parameter, hook)
  size_t next_to_start_ = 0;
  std::chrono::steady_clock::time_point first_start_, last_done_;
  double last_span_s_ = 0;
  double compression_s_ = 0;       // this step's so far
  double last_compression_s_ = 0;
  double last_compression_during_backward_s_ = 0;
  size_t started_during_backward_ = 0;
  std::mutex mutex_;
  std::mutex done_mutex_;  // guards last_done_ and done_count_
  size_t done_count_ = 0;
};

}  // namespace histotrain
