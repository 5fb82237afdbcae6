// Data-parallel gradient averaging that overlaps backward: parameters are packed into buckets of
// about `bucket_bytes` in the reverse of their registration order (the order backward produces
// their gradients). A gradient hook copies each gradient into its bucket; a bucket whose
// gradients are all in starts its all-reduce at once, on the backend's threads, while backward
// goes on with earlier layers. finish() waits, divides by the world size and writes the
// averaged gradients back. Buckets start strictly in index order, so every rank issues the same
// collectives in the same order.
#pragma once
#include <torch/torch.h>

#include <chrono>
#include <mutex>
#include <vector>

#include "dist/communicator.h"

namespace histotrain {

class GradientReducer {
 public:
  GradientReducer(const std::vector<torch::Tensor>& parameters, Communicator& comm, size_t bucket_bytes);
  ~GradientReducer();  // removes the gradient hooks
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // Call after backward: every parameter's .grad then holds the mean over ranks.
  void finish();

  size_t buckets() const { return buckets_.size(); }
  // The last step's all-reduces: from the first bucket's start to the last one's completion.
  double last_allreduce_seconds() const { return last_span_s_; }
  // Buckets of the last step whose all-reduce started before backward returned (overlap).
  size_t started_during_backward() const { return started_during_backward_; }

 private:
  struct Bucket {
    std::vector<size_t> params;
    std::vector<int64_t> offsets;
    torch::Tensor flat;
    size_t pending = 0;
    Communicator::Work work;
  };
  void on_gradient(size_t param, const torch::Tensor& grad);
  void start_ready_buckets();  // caller holds mutex_
  void reset_for_next_step();
  size_t done_count();

  std::vector<torch::Tensor> params_;
  Communicator& comm_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;  // per parameter
  std::vector<size_t> slot_of_;    // index inside its bucket
  std::vector<unsigned> hooks_;
  size_t next_to_start_ = 0;
  std::chrono::steady_clock::time_point first_start_, last_done_;
  double last_span_s_ = 0;
  size_t started_during_backward_ = 0;
  std::mutex mutex_;
  std::mutex done_mutex_;  // guards last_done_ and done_count_
  size_t done_count_ = 0;
};

}  // namespace histotrain
