// The collectives data-parallel training needs, over PyTorch's c10d: a TCPStore at rank 0 for the
// rendezvous, then Gloo (CPU, or CUDA tensors) or NCCL (CUDA). Every blocking wait is bounded by
// the timeout; a failure names the ranks that stopped answering.
#pragma once
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>
#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/compat.h"
#include "distributed/rendezvous.h"
#include "util/errors.h"

namespace histotrain {

// Another rank died, hung past the timeout, or could not be reached.
class RankFailure : public Error {
 public:
  using Error::Error;
};

class Communicator {
 public:
  using Work = c10::intrusive_ptr<c10d::Work>;

  // Rendezvous at world.master_addr:master_port (rank 0 listens there), then the backend:
  // "gloo" or "nccl" ("" picks nccl for CUDA devices, gloo otherwise).
  static std::unique_ptr<Communicator> connect(const WorldInfo& world, const std::string& backend,
                                               const torch::Device& device, std::chrono::seconds timeout);

  // The backends this build can start: "gloo nccl", "gloo" (CPU LibTorch), "nccl" (a wheel's
  // LibTorch without Gloo's headers).
  static std::string available_backends();
  // NCCL's version ("2.21.5") where this build has NCCL, else "".
  static std::string nccl_version();

  // Over an existing store (several ranks inside one process, for tests): Gloo.
  Communicator(c10::intrusive_ptr<c10d::Store> store, int rank, int world_size, std::chrono::seconds timeout);

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  const std::string& backend() const { return backend_; }

  // In-place sum over ranks; the async form returns a handle for wait().
  Work all_reduce_sum_async(torch::Tensor& tensor);
  void all_reduce_sum(torch::Tensor& tensor);
  void all_reduce_max(torch::Tensor& tensor);
  // Every rank's `input` into `outputs[rank]` (each of input's shape and dtype), as raw bytes: any
  // dtype travels, also those the backend cannot sum (bfloat16 on Gloo in LibTorch 1.13).
  Work all_gather_async(std::vector<torch::Tensor>& outputs, torch::Tensor& input);
  // Every rank's tensors become `root`'s (any dtypes; sent as one flat buffer per dtype).
  void broadcast(const std::vector<torch::Tensor>& tensors, int root);
  void broadcast_from_rank0(const std::vector<torch::Tensor>& tensors) { broadcast(tensors, 0); }
  void barrier();
  // Point to point (pipeline stages): a send returns at once; a receive fills `tensor`.
  Work send_async(torch::Tensor& tensor, int to_rank, int tag);
  void receive(torch::Tensor& tensor, int from_rank, int tag);
  // A barrier that may wait longer than the timeout (ranks waiting for one that works alone).
  void barrier_with_timeout(std::chrono::milliseconds timeout, const std::string& what);
  // Every rank states `value` (JSON text) for `what`; unless all agree, each rank throws an Error
  // naming the ranks and the fields that differ. Ranks that disagree on the model or the data
  // would otherwise meet in collectives of different sizes.
  void check_agreement(const std::string& what, const std::string& value);
  // Waits for an async collective; a failure becomes a RankFailure that names the missing ranks.
  void wait(const Work& work, const std::string& what);

 private:
  Communicator(c10::intrusive_ptr<c10d::Store> store, c10::intrusive_ptr<compat::CollectiveBackend> group,
               int rank, int world_size, std::string backend, std::chrono::seconds timeout);
  // Launches a collective; a failure to start it becomes a RankFailure as a failed wait does.
  template <typename Launch>
  Work start(const std::string& what, Launch launch);
  // NCCL reduces CUDA tensors only: host values (counts, sums, flags, the stage plan) travel
  // through host_values_via_ and back. Gloo takes them where they are.
  template <typename Collective>
  void through_backend_device(torch::Tensor& tensor, Collective collective);
  [[noreturn]] void fail(const std::string& what, const std::exception& cause);
  std::string missing_ranks();

  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<compat::CollectiveBackend> group_;
  int rank_, world_size_;
  std::string backend_;
  std::chrono::seconds timeout_;
  torch::Device host_values_via_{torch::kCPU};  // the rank's GPU with NCCL
};

}  // namespace histotrain
