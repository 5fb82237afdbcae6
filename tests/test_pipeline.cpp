#include <gtest/gtest.h>
#include <torch/csrc/distributed/c10d/HashStore.hpp>

#include <thread>

#include "dist/communicator.h"
#include "model/resnet.h"
#include "pipeline/local_pipeline.h"
#include "pipeline/pipeline_stage.h"
#include "pipeline/stage_plan.h"
#include "train/config.h"
#include "train/optimizer.h"
#include "util/errors.h"

namespace histotrain {
namespace {

TEST(StagePlan, BalancesContiguousStagesOnCost) {
  const auto two = balance_stages({1, 1, 1, 1, 4}, 2);
  EXPECT_EQ(two.bounds, (std::vector<int64_t>{0, 4, 5}));
  const auto three = balance_stages({3, 1, 1, 1, 1, 1, 1, 3}, 3);
  EXPECT_EQ(three.bounds, (std::vector<int64_t>{0, 2, 6, 8})) << "stages of 4, 4 and 4";
  EXPECT_EQ(three.stage_of(0), 0);
  EXPECT_EQ(three.stage_of(6), 2);
  EXPECT_EQ(balance_stages({1, 2, 3}, 1).bounds, (std::vector<int64_t>{0, 3}));
  StagePlan interleaved = balance_stages({1, 1, 1, 1, 1, 1, 1, 1}, 4);
  interleaved.ranks = 2;  // chunks 0 and 2 on stage 0, 1 and 3 on stage 1
  EXPECT_EQ(interleaved.virtual_stages(), 2);
  EXPECT_EQ(interleaved.chunks_of(1), (std::vector<int>{1, 3}));
  EXPECT_EQ(interleaved.stage_of(5), 0) << "unit 5 is in chunk 2";
  EXPECT_EQ(interleaved.stage_of(7), 1);
  EXPECT_THROW(balance_stages({1, 2}, 3), UsageError);
}

TEST(StagePlan, SplitGivenByHand) {
  EXPECT_EQ(parse_split("4,7", 10, 3).bounds, (std::vector<int64_t>{0, 4, 7, 10}));
  for (const char* bad : {"7,4", "0,4", "4,10", "x", "4,,7", "4"}) EXPECT_THROW(parse_split(bad, 10, 3), UsageError) << bad;
}

TEST(StagePlan, UnitsChainToTheWholeNetwork) {
  torch::manual_seed(0);
  ResNet model("resnet18", 5);
  model->eval();
  EXPECT_EQ(model->unit_count(), 10);
  EXPECT_EQ(model->unit_name(0), "stem");
  EXPECT_EQ(model->unit_name(3), "layer2.0");
  EXPECT_EQ(model->unit_name(9), "head");
  int64_t params = 0;
  for (int64_t u = 0; u < model->unit_count(); ++u)
    for (const auto& p : model->unit_parameters(u)) params += p.numel();
  int64_t all = 0;
  for (const auto& p : model->parameters()) all += p.numel();
  EXPECT_EQ(params, all) << "every parameter belongs to exactly one unit";
  const auto x = torch::randn({2, 3, 64, 64});
  const auto split = model->forward_units(model->forward_units(x, 0, 4), 4, model->unit_count());
  EXPECT_TRUE(torch::allclose(split, model->forward(x), 1e-5, 1e-6));
  const auto costs = measure_unit_costs("resnet18", 5, 4, 2, 32, torch::kCPU, torch::MemoryFormat::Contiguous);
  ASSERT_EQ(costs.size(), 10u);
  for (double c : costs) EXPECT_GT(c, 0);
}

// One training step of an unsplit ResNet-18 (BatchNorm in training mode), and the same step as a
// K-stage pipeline over K rank threads with M micro-batches. With M = 1 BatchNorm sees the same
// batch in both, so the weights after the step must agree; with M > 1 the unsplit model is
// run micro-batch by micro-batch with the loss divided by M, which is what the pipeline computes.
struct StepOutcome {
  std::vector<torch::Tensor> gradients, weights, buffers;
  double loss_sum = 0;
};

StepOutcome unsplit_step(int micro_batches, const torch::Tensor& x, const torch::Tensor& y) {
  torch::manual_seed(4);
  ResNet model("resnet18", 5);
  model->train();
  auto optimizer = make_optimizer(model, TrainConfig{});
  StepOutcome out;
  const int64_t mb = x.size(0) / micro_batches;
  for (int m = 0; m < micro_batches; ++m) {
    const auto loss = torch::nn::functional::cross_entropy(model->forward(x.narrow(0, m * mb, mb)), y.narrow(0, m * mb, mb));
    (loss / micro_batches).backward();
    out.loss_sum += loss.item<double>() * mb;
  }
  for (const auto& p : model->parameters()) out.gradients.push_back(p.grad().clone());
  optimizer->step();
  for (const auto& p : model->parameters()) out.weights.push_back(p.detach().clone());
  for (const auto& b : model->buffers()) out.buffers.push_back(b.clone());
  return out;
}

std::vector<StepOutcome> pipeline_step(int stages, int micro_batches, const torch::Tensor& x, const torch::Tensor& y,
                                       int virtual_stages) {
  std::vector<ResNet> models;
  for (int r = 0; r < stages; ++r) {  // built here: the global generator is shared by the threads
    torch::manual_seed(4);
    models.emplace_back("resnet18", 5);
    models.back()->train();
  }
  StagePlan plan = balance_stages(std::vector<double>(10, 1.0), stages * virtual_stages);
  plan.ranks = stages;
  auto store = c10::make_intrusive<c10d::HashStore>();
  std::vector<StepOutcome> outcomes(stages);
  std::vector<std::string> errors(stages);
  std::vector<std::thread> threads;
  for (int r = 0; r < stages; ++r)
    threads.emplace_back([&, r] {
      try {
        Communicator comm(store, r, stages, std::chrono::seconds(60));
        PipelineStage stage(models[r], plan, comm, x.size(2));
        auto optimizer = make_optimizer(models[r], TrainConfig{});
        GradScaler scaler(false);
        Batch batch{r == 0 ? x : torch::Tensor(), y};  // later stages get labels only
        const auto result = stage.step(batch, micro_batches, {}, Precision::fp32, scaler);
        outcomes[r].loss_sum = result.loss_sum;
        for (const auto& p : models[r]->parameters())
          outcomes[r].gradients.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
        optimizer->step();
        stage.gather(*optimizer);
        for (const auto& p : models[r]->parameters()) outcomes[r].weights.push_back(p.detach().clone());
        for (const auto& b : models[r]->buffers()) outcomes[r].buffers.push_back(b.clone());
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < stages; ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
  return outcomes;
}

double largest_difference(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double worst = 0;
  for (size_t k = 0; k < a.size(); ++k)
    if (a[k].defined() && b[k].defined())
      worst = std::max(worst, (a[k].to(torch::kFloat64) - b[k].to(torch::kFloat64)).abs().max().item<double>());
  return worst;
}

void expect_pipeline_matches_unsplit(int stages, int micro_batches, int virtual_stages = 1) {
  torch::manual_seed(11);
  const auto x = torch::randn({8, 3, 64, 64});
  const auto y = torch::arange(8).remainder(5);
  const StepOutcome reference = unsplit_step(micro_batches, x, y);
  const auto ranks = pipeline_step(stages, micro_batches, x, y, virtual_stages);
  ASSERT_EQ(ranks.size(), static_cast<size_t>(stages));
  EXPECT_NEAR(ranks.back().loss_sum, reference.loss_sum, 1e-4) << "the last stage owns the loss";
  // Each parameter has a gradient on exactly one rank, equal to the unsplit model's.
  for (size_t k = 0; k < reference.gradients.size(); ++k) {
    int holders = 0;
    for (const auto& rank : ranks)
      if (rank.gradients[k].defined()) {
        ++holders;
        EXPECT_LT((rank.gradients[k] - reference.gradients[k]).abs().max().item<double>(), 1e-5) << "parameter " << k;
      }
    EXPECT_EQ(holders, 1) << "parameter " << k;
  }
  // After the step and the gather, every rank holds the unsplit model's weights and BN statistics.
  for (int r = 0; r < stages; ++r) {
    EXPECT_LT(largest_difference(ranks[r].weights, reference.weights), 1e-5) << "rank " << r;
    EXPECT_LT(largest_difference(ranks[r].buffers, reference.buffers), 1e-5) << "rank " << r;
  }
}

TEST(Pipeline, TwoStagesOneMicroBatchStepLikeTheUnsplitModel) { expect_pipeline_matches_unsplit(2, 1); }
TEST(Pipeline, FourStagesOneMicroBatchStepLikeTheUnsplitModel) { expect_pipeline_matches_unsplit(4, 1); }
TEST(Pipeline, MicroBatchGradientsAccumulateAsTheirMean) { expect_pipeline_matches_unsplit(2, 4); }
// Interleaved: 2 ranks of 2 chunks each (a micro-batch goes rank 0, 1, 0, 1): the same step.
TEST(Pipeline, InterleavedChunksStepLikeTheUnsplitModel) {
  expect_pipeline_matches_unsplit(2, 1, 2);
  expect_pipeline_matches_unsplit(2, 4, 2);
}

// Stages on devices inside one process (cpu,cpu here): the same step as the unsplit model.
TEST(Pipeline, StagesOnDevicesInOneProcessStepLikeTheUnsplitModel) {
  torch::manual_seed(11);
  const auto x = torch::randn({8, 3, 64, 64});
  const auto y = torch::arange(8).remainder(5);
  const StepOutcome reference = unsplit_step(2, x, y);
  torch::manual_seed(4);
  ResNet model("resnet18", 5);
  model->train();
  auto optimizer = make_optimizer(model, TrainConfig{});
  place_stages(model, parse_split("5", model->unit_count(), 2), parse_devices("cpu,cpu"));
  GradScaler scaler(false);
  const auto result = local_pipeline_step(model, Batch{x, y}, 2, {}, Precision::fp32, scaler);
  EXPECT_NEAR(result.loss_sum, reference.loss_sum, 1e-4);
  std::vector<torch::Tensor> gradients;
  for (const auto& p : model->parameters()) gradients.push_back(p.grad());
  EXPECT_LT(largest_difference(gradients, reference.gradients), 1e-5);
  EXPECT_THROW(parse_devices("cpu"), UsageError);
  EXPECT_THROW(place_stages(model, parse_split("5", model->unit_count(), 2), parse_devices("cpu,cpu,cpu")), UsageError);
}

}  // namespace
}  // namespace histotrain
