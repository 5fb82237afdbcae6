#include "distributed/data_parallel.h"

#include <algorithm>
#include <chrono>

#include "util/clock.h"
#include "util/errors.h"

namespace histotrain {

namespace {

std::vector<torch::Tensor> parameters_and_buffers(ResNet& model) {
  std::vector<torch::Tensor> all = model->parameters();
  for (const auto& b : model->buffers()) all.push_back(b);
  return all;
}

}  // namespace

DataParallel::DataParallel(const WorldInfo& world, const std::string& backend, const torch::Device& device,
                           std::chrono::seconds timeout, Role role)
    : world_(world), role_(role) {
  // A world of one needs no communication, unless a launcher started it with an explicit
  // --backend: then the backend is used all the same, e.g. to check NCCL on a node with one GPU.
  const bool one_rank_on_request = !backend.empty() && world_.launcher != "none";
  if (world_.distributed() || one_rank_on_request) comm_ = Communicator::connect(world_, backend, device, timeout);
}

void DataParallel::node_leaders_first(const std::function<void()>& work) {
  if (!comm_) return work();
  const bool leader = world_.local_rank == 0;
  if (leader) work();
  comm_->barrier_with_timeout(std::chrono::hours(2), "waiting for each node's first rank to load the data");
  if (!leader) work();
}

void DataParallel::broadcast_model(ResNet& model) {
  if (comm_) comm_->broadcast_from_rank0(parameters_and_buffers(model));
}

void DataParallel::broadcast_buffers(ResNet& model) {
  if (comm_) comm_->broadcast_from_rank0(model->buffers());
}

void DataParallel::attach(ResNet& model, GradScaler& scaler, double bucket_mb, GradCompression compression,
                          uint64_t seed) {
  if (!comm_) return;
  // Only parameters that learn get gradients (a frozen backbone's do not), so only they are averaged.
  std::vector<torch::Tensor> learning;
  for (const auto& p : model->parameters())
    if (p.requires_grad()) learning.push_back(p);
  if (role_ == Role::replicas)
    reducer_ = std::make_unique<GradientReducer>(learning, *comm_, static_cast<size_t>(bucket_mb * (1 << 20)),
                                                 compression, seed);
  // Replicas hold the same gradients after the all-reduce, so their inf/NaN checks agree
  // already; pipeline stages hold different gradients and must skip together: the max over
  // ranks makes the decision shared either way.
  scaler.set_found_inf_reducer([this](torch::Tensor& found_inf) { comm_->all_reduce_max(found_inf); });
}

std::vector<std::pair<std::string, torch::Tensor>> DataParallel::compression_state() {
  std::vector<std::pair<std::string, torch::Tensor>> state;
  PowerSgd* power = reducer_ ? reducer_->power_sgd() : nullptr;
  if (!power) return state;
  for (auto& [name, tensor] : power->shared_state()) state.emplace_back("powersgd." + name, tensor);
  // Every rank's error feedback, gathered as one flat vector per rank.
  const auto mine = power->rank_state();
  std::vector<torch::Tensor> parts;
  for (const auto& named : mine) parts.push_back(named.second.reshape(-1));
  torch::Tensor flat = torch::cat(parts);
  std::vector<torch::Tensor> all(static_cast<size_t>(world_size()));
  for (auto& t : all) t = torch::empty_like(flat);
  comm_->wait(comm_->all_gather_async(all, flat), "gathering PowerSGD's error feedback");
  for (int r = 0; r < world_size(); ++r) {
    int64_t offset = 0;
    for (const auto& [name, tensor] : mine) {
      state.emplace_back("powersgd." + name.substr(0, name.find('.')) + "." + std::to_string(r) +
                             name.substr(name.find('.')),
                         all[static_cast<size_t>(r)].narrow(0, offset, tensor.numel()).view(tensor.sizes()));
      offset += tensor.numel();
    }
  }
  return state;
}

void DataParallel::restore_compression(const std::vector<std::pair<std::string, torch::Tensor>>& state,
                                       int saved_world, int64_t step) {
  if (!reducer_) return;
  reducer_->set_steps(step);
  PowerSgd* power = reducer_->power_sgd();
  if (!power || state.empty()) return;
  std::vector<std::pair<std::string, torch::Tensor>> shared, mine;
  const std::string my_errors = "powersgd.error." + std::to_string(rank()) + ".";
  for (const auto& [name, tensor] : state) {
    if (name.rfind("powersgd.q.", 0) == 0) shared.emplace_back(name.substr(9), tensor);
    if (name.rfind(my_errors, 0) == 0) mine.emplace_back("error." + name.substr(my_errors.size()), tensor);
  }
  power->load_shared_state(shared);
  if (saved_world == world_size()) power->load_rank_state(mine);
}

void DataParallel::backward(const torch::Tensor& loss) {
  const auto start = Clock::now();
  loss.backward();  // gradient hooks start the buckets' all-reduces meanwhile
  const auto backward_done = Clock::now();
  ++times_.steps;
  times_.backward_s += seconds_between(start, backward_done);
  if (!reducer_) return;
  reducer_->finish();
  times_.exposed_s += seconds_since(backward_done);
  times_.allreduce_s += reducer_->last_allreduce_seconds();
  times_.compression_s += reducer_->last_compression_seconds();
  times_.compression_during_backward_s += reducer_->last_compression_during_backward_seconds();
  const double backward = seconds_between(start, backward_done);
  times_.bucket_ready_share.resize(reducer_->buckets(), 0.0);
  for (size_t k = 0; k < reducer_->buckets(); ++k) {
    const double passed = seconds_between(start, reducer_->bucket_started(k));
    times_.bucket_ready_share[k] += backward > 0 ? std::clamp(passed / backward, 0.0, 1.0) : 1.0;
  }
}

void DataParallel::backward_without_sync(const torch::Tensor& loss) {
  const auto start = Clock::now();
  if (reducer_) reducer_->hold(true);
  loss.backward();
  if (reducer_) reducer_->hold(false);
  times_.backward_s += seconds_since(start);  // part of the step's backward; the step is counted by backward()
}

std::vector<int64_t> DataParallel::shard(const std::vector<int64_t>& items) const {
  std::vector<int64_t> mine;
  for (size_t i = static_cast<size_t>(world_.rank); i < items.size(); i += static_cast<size_t>(world_.world_size))
    mine.push_back(items[i]);
  return mine;
}

void DataParallel::sum(ConfusionMatrix& confusion) {
  if (!comm_) return;
  auto counts = torch::tensor(confusion.counts(), torch::kLong);
  comm_->all_reduce_sum(counts);
  for (size_t i = 0; i < confusion.counts().size(); ++i) confusion.counts()[i] = counts[static_cast<int64_t>(i)].item<int64_t>();
}

torch::Tensor DataParallel::gather_shards(const torch::Tensor& mine, int64_t items) {
  if (!comm_) return mine;
  std::vector<int64_t> sizes = mine.sizes().vec();
  sizes[0] = items;
  torch::Tensor all = torch::zeros(sizes, mine.options());
  all.index_copy_(0, torch::arange(world_.rank, items, world_.world_size, torch::kLong), mine);
  comm_->all_reduce_sum(all);
  return all;
}

double DataParallel::sum(double value) {
  if (!comm_) return value;
  auto t = torch::tensor({value}, torch::kFloat64);
  comm_->all_reduce_sum(t);
  return t.item<double>();
}

int DataParallel::agree_on_stop(int signal_number) {
  if (!comm_) return signal_number;
  auto t = torch::tensor({signal_number}, torch::kInt32);
  comm_->all_reduce_max(t);
  return t.item<int>();
}

torch::Device device_for_rank(const torch::Device& requested, const WorldInfo& world) {
  if (requested.is_cuda() && !requested.has_index() && world.distributed()) {
    const int64_t gpus = static_cast<int64_t>(torch::cuda::device_count());
    if (world.local_rank >= gpus)
      throw UsageError("local rank " + std::to_string(world.local_rank) + " has no GPU of its own (this node has " +
                       std::to_string(gpus) + "); start one rank per GPU, or pass --device cuda:0 --backend gloo to "
                       "share one GPU between ranks for testing");
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(world.local_rank));
  }
  return requested;
}

}  // namespace histotrain
