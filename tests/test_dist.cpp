#include <gtest/gtest.h>

#include <map>
#include <thread>

#include "distributed/communicator.h"
#include "distributed/grad_reducer.h"
#include "distributed/rendezvous.h"
#include "model/resnet.h"
#include "test_ranks.h"
#include "train/config.h"
#include "train/optimizer.h"
#include "util/errors.h"

namespace histotrain {
namespace {

WorldInfo world_from(const std::map<std::string, std::string>& vars) {
  return world_from_environment([&](const char* name) -> const char* {
    const auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

TEST(Rendezvous, NothingSetIsOneProcess) {
  const WorldInfo w = world_from({});
  EXPECT_FALSE(w.distributed());
  EXPECT_EQ(w.launcher, "none");
}

TEST(Rendezvous, TorchrunVariables) {
  const WorldInfo w = world_from({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "node7"},
                                  {"MASTER_PORT", "29400"}});
  EXPECT_EQ(w.launcher, "torchrun");
  EXPECT_EQ(w.rank, 3);
  EXPECT_EQ(w.world_size, 4);
  EXPECT_EQ(w.local_rank, 1);
  EXPECT_EQ(w.master_addr, "node7");
  EXPECT_EQ(w.master_port, 29400);
}

TEST(Rendezvous, SlurmStepWithFirstHostAsMasterAndPortFromTheJob) {
  const WorldInfo w = world_from({{"SLURM_PROCID", "5"}, {"SLURM_STEP_NUM_TASKS", "8"}, {"SLURM_LOCALID", "1"},
                                  {"SLURM_NTASKS", "8"}, {"SLURM_STEP_NODELIST", "gpu[07-09,12],cpu3"},
                                  {"SLURM_JOB_ID", "123456"}});
  EXPECT_EQ(w.launcher, "slurm");
  EXPECT_EQ(w.rank, 5);
  EXPECT_EQ(w.world_size, 8);
  EXPECT_EQ(w.local_rank, 1);
  EXPECT_EQ(w.master_addr, "gpu07");
  EXPECT_EQ(w.master_port, 20000 + 123456 % 20000);
  // A batch script (no srun step) stays a single process.
  EXPECT_FALSE(world_from({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "8"}}).distributed());
}

TEST(Rendezvous, SlurmNodeLists) {
  EXPECT_EQ(first_slurm_host("node1"), "node1");
  EXPECT_EQ(first_slurm_host("node1,node2"), "node1");
  EXPECT_EQ(first_slurm_host("a[001-004]"), "a001");
  EXPECT_EQ(first_slurm_host("a[3,5-6],b1"), "a3");
  EXPECT_THROW(first_slurm_host("a[3"), UsageError);
}

TEST(Rendezvous, OpenMpiOnOneHostAndAcrossHosts) {
  const WorldInfo local = world_from({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"},
                                      {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}});
  EXPECT_EQ(local.launcher, "openmpi");
  EXPECT_EQ(local.rank, 1);
  EXPECT_EQ(local.master_addr, "127.0.0.1");
  EXPECT_THROW(world_from({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "4"},
                           {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}}),
               UsageError)
      << "several hosts and no MASTER_ADDR";
}

TEST(Rendezvous, MalformedValuesAreUsageErrors) {
  EXPECT_THROW(world_from({{"RANK", "x"}, {"WORLD_SIZE", "2"}}), UsageError);
  EXPECT_THROW(world_from({{"RANK", "2"}, {"WORLD_SIZE", "2"}}), UsageError);
  EXPECT_THROW(world_from({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "70000"}}), UsageError);
  EXPECT_THROW(world_from({{"RANK", "0"}}), UsageError) << "WORLD_SIZE missing";
}

// Runs `body(rank, comm)` on `world` threads, each a rank with its own Gloo group over one store.
template <typename Body>
void run_ranks(int world, Body body) {
  testing::run_ranks(world, [&](Communicator& comm) { body(comm.rank(), comm); });
}

TEST(Communicator, SumsMaxesAndBroadcastsAcrossRanks) {
  HISTOTRAIN_SKIP_WITHOUT_GLOO();
  std::vector<torch::Tensor> sums(2), maxes(2), broadcast(2);
  run_ranks(2, [&](int r, Communicator& comm) {
    auto x = torch::full({3}, r + 1.0);
    comm.all_reduce_sum(x);
    sums[r] = x;
    auto m = torch::full({1}, r == 1 ? 1.0 : 0.0);
    comm.all_reduce_max(m);
    maxes[r] = m;
    auto a = torch::full({2, 2}, 10.0 * r);
    auto b = torch::full({3}, 7 * r, torch::kLong);
    comm.broadcast_from_rank0({a, b});
    broadcast[r] = torch::cat({a.reshape(-1), b.to(torch::kFloat32)});
    comm.barrier();
  });
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(torch::equal(sums[r], torch::full({3}, 3.0)));
    EXPECT_EQ(maxes[r].item<double>(), 1.0) << "an inf on one rank is an inf on all";
    EXPECT_TRUE(torch::equal(broadcast[r], torch::zeros({7})));
  }
}

// Gradients of ResNet-18 (BN in eval mode, so the halves do not interact through batch
// statistics) on the full batch in one process, and averaged over two ranks of half a batch.
TEST(GradientReducer, TwoRanksOfHalfABatchGiveTheFullBatchGradient) {
  HISTOTRAIN_SKIP_WITHOUT_GLOO();
  torch::manual_seed(5);
  const auto x = torch::randn({8, 3, 32, 32});
  const auto y = torch::arange(8).remainder(5);
  auto gradients_of = [&](ResNet& model, const torch::Tensor& xs, const torch::Tensor& ys) {
    model->eval();
    torch::nn::functional::cross_entropy(model->forward(xs), ys).backward();
  };
  torch::manual_seed(1);
  ResNet reference("resnet18", 5);
  gradients_of(reference, x, y);

  std::vector<std::vector<torch::Tensor>> grads(2);
  std::vector<size_t> buckets(2), overlapped(2);
  std::vector<ResNet> models;
  for (int r = 0; r < 2; ++r) {  // here, not in the rank threads: the global generator is shared
    torch::manual_seed(1);
    models.emplace_back("resnet18", 5);
  }
  run_ranks(2, [&](int r, Communicator& comm) {
    ResNet& model = models[r];
    GradientReducer reducer(model->parameters(), comm, /*bucket_bytes=*/4u << 20);
    for (int step = 0; step < 2; ++step) {  // twice: the reducer resets between steps
      for (auto& p : model->parameters()) p.mutable_grad() = torch::Tensor();
      gradients_of(model, x.narrow(0, 4 * r, 4), y.narrow(0, 4 * r, 4));
      reducer.finish();
    }
    for (const auto& p : model->parameters()) grads[r].push_back(p.grad().clone());
    buckets[r] = reducer.buckets();
    overlapped[r] = reducer.started_during_backward();
  });
  const auto expected = reference->parameters();
  for (int r = 0; r < 2; ++r) {
    ASSERT_EQ(grads[r].size(), expected.size());
    for (size_t k = 0; k < expected.size(); ++k)
      EXPECT_TRUE(torch::allclose(grads[r][k], expected[k].grad(), 1e-4, 1e-6)) << "rank " << r << " parameter " << k;
    EXPECT_GT(buckets[r], 2u) << "11 M parameters in 4 MiB buckets";
    EXPECT_EQ(overlapped[r], buckets[r]) << "every bucket starts from a gradient hook, before backward returns";
  }
}

// K optimizer steps (SGD with Nesterov momentum and weight decay, as the trainer builds it):
// 2 ranks of batch B end with the same weights as 1 rank of batch 2B. BatchNorm runs in eval
// mode (running statistics), which makes each image's gradient independent of the others in
// its batch: the comparison is exact in intent, up to float summation order.
TEST(GradientReducer, TwoRanksOfBatchBEndWithTheWeightsOfOneRankOfBatch2B) {
  HISTOTRAIN_SKIP_WITHOUT_GLOO();
  const int steps = 3, B = 4;
  torch::manual_seed(9);
  const auto x = torch::randn({steps, 2 * B, 3, 32, 32});
  const auto y = torch::randint(0, 5, {steps, 2 * B});
  OptimConfig config;
  config.lr = 0.05;
  auto train = [&](ResNet& model, int first, int count, Communicator* comm) {
    auto optimizer = make_optimizer(model, config);
    std::unique_ptr<GradientReducer> reducer;
    if (comm) reducer = std::make_unique<GradientReducer>(model->parameters(), *comm, 1u << 20);
    model->eval();
    for (int s = 0; s < steps; ++s) {
      clear_gradients(*optimizer);
      torch::nn::functional::cross_entropy(model->forward(x[s].narrow(0, first, count)), y[s].narrow(0, first, count))
          .backward();
      if (reducer) reducer->finish();
      optimizer->step();
    }
  };
  std::vector<ResNet> models;
  for (int r = 0; r < 3; ++r) {
    torch::manual_seed(2);
    models.emplace_back("resnet18", 5);
  }
  train(models[2], 0, 2 * B, nullptr);
  run_ranks(2, [&](int r, Communicator& comm) { train(models[r], r * B, B, &comm); });
  const auto reference = models[2]->parameters();
  for (int r = 0; r < 2; ++r) {
    const auto params = models[r]->parameters();
    double worst = 0;
    for (size_t k = 0; k < params.size(); ++k)
      worst = std::max(worst, (params[k] - reference[k]).abs().max().item<double>());
    EXPECT_LT(worst, 1e-5) << "rank " << r << ": largest weight difference after " << steps << " steps";
  }
  // The weights did move: the comparison is not between untouched initialisations.
  torch::manual_seed(2);
  ResNet initial("resnet18", 5);
  EXPECT_GT((initial->parameters().back() - reference.back()).abs().max().item<double>(), 1e-3);
}

// --accumulate: each rank adds up `slices` slices of its half of the batch (each loss divided by
// `slices`), the reducer holding the all-reduce back until the last one; two steps, as the
// reducer resets between steps. BN in eval mode, as above.
std::vector<std::vector<torch::Tensor>> accumulated_gradients(const torch::Tensor& x, const torch::Tensor& y,
                                                              int slices, const GradCompression& compression) {
  std::vector<ResNet> models;
  for (int r = 0; r < 2; ++r) {
    torch::manual_seed(1);
    models.emplace_back("resnet18", 5);
  }
  std::vector<std::vector<torch::Tensor>> grads(2);
  run_ranks(2, [&](int r, Communicator& comm) {
    ResNet& model = models[r];
    model->eval();
    GradientReducer reducer(model->parameters(), comm, /*bucket_bytes=*/1u << 20, compression, /*seed=*/3);
    const int64_t half = x.size(0) / 2, slice = half / slices;
    for (int step = 0; step < 2; ++step) {
      for (auto& p : model->parameters()) p.mutable_grad() = torch::Tensor();
      for (int k = 0; k < slices; ++k) {
        const int64_t first = r * half + k * slice;
        const auto loss =
            torch::nn::functional::cross_entropy(model->forward(x.narrow(0, first, slice)), y.narrow(0, first, slice));
        const bool last = k == slices - 1;
        reducer.hold(!last);
        (loss / slices).backward();
        reducer.hold(false);
        if (last) reducer.finish();
      }
    }
    for (const auto& p : model->parameters()) grads[r].push_back(p.grad().clone());
  });
  return grads;
}

double largest_difference(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double worst = 0;
  for (size_t k = 0; k < a.size(); ++k) worst = std::max(worst, (a[k] - b[k]).abs().max().item<double>());
  return worst;
}

// Two ranks accumulating 4 slices of 2 images give the mean gradient of the whole batch of 16,
// as one process computes it; under PowerSGD (compressing from the first step) they give what
// the same two ranks give from one backward of 8 images each: the hooks compress the sum.
TEST(GradientReducer, AccumulatedSlicesReduceOnceToTheWholeBatchGradient) {
  HISTOTRAIN_SKIP_WITHOUT_GLOO();
  torch::manual_seed(5);
  const auto x = torch::randn({16, 3, 32, 32});
  const auto y = torch::arange(16).remainder(5);
  torch::manual_seed(1);
  ResNet reference("resnet18", 5);
  reference->eval();
  torch::nn::functional::cross_entropy(reference->forward(x), y).backward();
  std::vector<torch::Tensor> expected;
  for (const auto& p : reference->parameters()) expected.push_back(p.grad());

  const auto accumulated = accumulated_gradients(x, y, 4, {});
  for (int r = 0; r < 2; ++r) EXPECT_LT(largest_difference(accumulated[r], expected), 1e-5) << "rank " << r;

  GradCompression power;
  power.kind = CompressionKind::powersgd;
  power.rank = 2;
  power.start_step = 0;
  const auto whole = accumulated_gradients(x, y, 1, power);
  const auto sliced = accumulated_gradients(x, y, 4, power);
  for (int r = 0; r < 2; ++r) {
    EXPECT_LT(largest_difference(sliced[r], whole[r]), 1e-4) << "rank " << r;
    EXPECT_GT(largest_difference(whole[r], expected), 1e-4) << "PowerSGD did compress";
  }
}

TEST(Communicator, NcclNeedsCudaAndUnknownBackendsAreUsageErrors) {
  WorldInfo w;
  EXPECT_THROW(Communicator::connect(w, "nccl", torch::kCPU, std::chrono::seconds(5)), UsageError);
  EXPECT_THROW(Communicator::connect(w, "mpi", torch::kCPU, std::chrono::seconds(5)), UsageError);
}

}  // namespace
}  // namespace histotrain
