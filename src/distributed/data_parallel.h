// What a training run does differently as one rank of a data-parallel job: join the others,
// start from rank 0's weights, average gradients while backward runs, shard the validation set
// and sum its counts. With a world of one every call is a no-op, so the trainer has one path.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <vector>

#include "core/amp.h"
#include "core/metrics.h"
#include "distributed/communicator.h"
#include "distributed/grad_compression.h"
#include "distributed/grad_reducer.h"
#include "distributed/rendezvous.h"
#include "model/resnet.h"

namespace histotrain {

class DataParallel {
 public:
  // Replicas: every rank trains the whole model on its share of the data (data parallelism).
  // Stages: every rank trains one pipeline stage on the same batches; the data is not sharded
  // and gradients are not averaged (data_rank() 0 of data_ranks() 1).
  enum class Role { replicas, stages };

  // Connects when `world` has more than one rank (backend "" picks by device).
  DataParallel(const WorldInfo& world, const std::string& backend, const torch::Device& device,
               std::chrono::seconds timeout, Role role = Role::replicas);

  const WorldInfo& world() const { return world_; }
  int rank() const { return world_.rank; }
  int world_size() const { return world_.world_size; }
  bool is_main() const { return world_.rank == 0; }
  // Who this rank is for the training data: its shard of each epoch, its augmentation stream.
  int data_rank() const { return role_ == Role::replicas ? world_.rank : 0; }
  int data_ranks() const { return role_ == Role::replicas ? world_.world_size : 1; }
  Communicator* communicator() { return comm_.get(); }
  std::string backend() const { return comm_ ? comm_->backend() : "none"; }

  // Runs `work` on each node's first rank, then on the others: the first builds the node's tile
  // cache, the others find it built. The wait between is long (decoding can take minutes) but
  // ends at once if a rank dies.
  void node_leaders_first(const std::function<void()>& work);

  // Throws unless every rank states the same `value` for `what` (see Communicator).
  void check_agreement(const std::string& what, const std::string& value) {
    if (comm_) comm_->check_agreement(what, value);
  }

  // Returns once every rank has called it.
  void barrier() {
    if (comm_) comm_->barrier();
  }

  // Every rank takes rank 0's parameters and buffers (start, and after a resume).
  void broadcast_model(ResNet& model);
  // BatchNorm statistics drift apart between ranks (each sees its own images): rank 0's are
  // given to all before each validation, so every rank evaluates the same model.
  void broadcast_buffers(ResNet& model);

  // Gradients are averaged over ranks from now on (each backward() below), compressed as
  // `compression` says (`seed`: PowerSGD's first factors, the same on every rank).
  void attach(ResNet& model, GradScaler& scaler, double bucket_mb, GradCompression compression = {},
              uint64_t seed = 0);

  // The reducer's state a checkpoint keeps so that a resumed run continues exactly: PowerSGD's
  // factors ("powersgd.q.I") and every rank's error feedback ("powersgd.error.RANK.I"). A
  // collective (every rank calls it; rank 0's result is the whole); empty without PowerSGD.
  std::vector<std::pair<std::string, torch::Tensor>> compression_state();
  // Continues from a checkpoint taken at optimizer step `step` by `saved_world` ranks (another
  // world size: the error feedback starts again from zero, the log says so).
  void restore_compression(const std::vector<std::pair<std::string, torch::Tensor>>& state, int saved_world,
                           int64_t step);
  // Backward of `loss`; with several ranks the averaged gradients are in place when it returns.
  void backward(const torch::Tensor& loss);
  // Backward of `loss` adding to the gradients, with no collective: the first batches of an
  // accumulated update (--accumulate); the backward() that follows reduces the whole sum.
  void backward_without_sync(const torch::Tensor& loss);

  // Host time per step, summed over the steps so far (rank 0's view). all-reduce: from the
  // first bucket's start to the last one's end; exposed: the part after backward returned.
  struct StepTimes {
    int64_t steps = 0;
    double backward_s = 0, allreduce_s = 0, exposed_s = 0;
    double compression_s = 0;  // the compression's own arithmetic (GradientReducer)
    double compression_during_backward_s = 0;  // the part of it done in the gradient hooks
    // Per bucket: the share of backward that had passed when its collective started (1: after
    // backward), summed over steps; where the scaling model places it on the step's timeline.
    std::vector<double> bucket_ready_share;
  };
  const StepTimes& step_times() const { return times_; }
  // The gradient reducer (null for one rank, and for pipeline stages).
  const GradientReducer* reducer() const { return reducer_.get(); }

  // This rank's share of `items` among all ranks (validation, where every rank holds the whole
  // model): items[rank], items[rank + world], ... (each item exactly once).
  std::vector<int64_t> shard(const std::vector<int64_t>& items) const;
  // Sums over ranks.
  void sum(ConfusionMatrix& confusion);
  // The rows each rank computed for its shard(items) ([shard size, ...] in shard order), put back
  // in the order of all `items` rows on every rank: an all-reduce over zeros, which is exact.
  torch::Tensor gather_shards(const torch::Tensor& mine, int64_t items);
  double sum(double value);
  // The largest `signal_number` any rank states (0: none): every rank learns of a stop signal
  // that one of them received, at the same step.
  int agree_on_stop(int signal_number);

 private:
  WorldInfo world_;
  Role role_;
  std::unique_ptr<Communicator> comm_;
  std::unique_ptr<GradientReducer> reducer_;
  StepTimes times_;
};

// The device a rank trains on: "cuda" becomes cuda:LOCAL_RANK in a data-parallel job.
torch::Device device_for_rank(const torch::Device& requested, const WorldInfo& world);

}  // namespace histotrain
