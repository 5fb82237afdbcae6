#include <gtest/gtest.h>

#include <functional>
#include <set>
#include <thread>
#include <tuple>

#include "distributed/communicator.h"
#include "model/resnet.h"
#include "pipeline/local_pipeline.h"
#include "pipeline/pipeline_schedule.h"
#include "pipeline/pipeline_stage.h"
#include "pipeline/schedule_estimate.h"
#include "pipeline/stage_plan.h"
#include "pipeline/transfer_cost.h"
#include "test_ranks.h"
#include "train/config.h"
#include "train/optimizer.h"
#include "util/errors.h"

namespace histotrain {
namespace {

constexpr PipelineSchedule kGPipe = PipelineSchedule::fill_drain, k1F1B = PipelineSchedule::one_forward_one_backward;

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

// Units whose backward pass costs twice their forward pass, and no update.
UnitCosts costs_from_passes(const std::vector<double>& passes) {
  UnitCosts costs;
  for (double pass : passes) {
    costs.forward.push_back(pass / 3);
    costs.backward.push_back(2 * pass / 3);
    costs.update.push_back(0);
  }
  return costs;
}

TEST(ScheduleEstimate, EvenStagesIdleAsTheFillDrainFormulaSays) {
  const UnitCosts costs = costs_from_passes({3, 3, 3, 3});
  StagePlan two{{0, 2, 4}};  // 2 stages of 6 units of time per micro-batch
  const StepEstimate gpipe = estimate_step(two, costs, 4, kGPipe);
  EXPECT_DOUBLE_EQ(gpipe.seconds, (4 + 2 - 1) * 6.0);
  for (double idle : gpipe.idle) EXPECT_NEAR(idle, 1.0 / (4 + 2 - 1), 1e-12);
  StagePlan interleaved{{0, 1, 2, 3, 4}, 2};  // 2 chunks of 3 per stage
  const StepEstimate chunks = estimate_step(interleaved, costs, 4, kGPipe);
  EXPECT_DOUBLE_EQ(chunks.seconds, (2 * 4 + 2 - 1) * 3.0);
  for (double idle : chunks.idle) EXPECT_NEAR(idle, 1.0 / (2 * 4 + 2 - 1), 1e-12);
  EXPECT_DOUBLE_EQ(estimate_step(two, costs, 1, kGPipe).seconds, 12.0) << "one micro-batch: nothing overlaps";
}

TEST(ScheduleEstimate, TheUpdateAndTheSlowestStageSetTheStep) {
  UnitCosts costs = costs_from_passes({3, 6});
  costs.update = {1, 4};
  const StepEstimate estimate = estimate_step(StagePlan{{0, 1, 2}}, costs, 2, kGPipe);
  // Stage 0: forwards 0-1, 1-2; stage 1: forwards 1-3, 3-5, backwards 5-9, 9-13, update 13-17.
  // Stage 0: backwards 9-11, 13-15, update 15-16.
  EXPECT_DOUBLE_EQ(estimate.seconds, 17.0);
  EXPECT_NEAR(estimate.idle[0], 1 - 7.0 / 17, 1e-12);
  EXPECT_NEAR(estimate.idle[1], 1 - 16.0 / 17, 1e-12);
}

// A transfer delays the micro-batch that crosses a cut, and the stage that receives it counts it.
TEST(ScheduleEstimate, TransfersDelayTheMicroBatchesThatCrossACut) {
  UnitCosts costs = costs_from_passes({3, 3});
  costs.transfer = {0.5, 0};  // what leaves unit 0 (the cut); the last unit sends nothing
  const StagePlan two{{0, 1, 2}};
  // Forward 0-1, transfer to 1.5, forward 1.5-2.5, backward 2.5-4.5, transfer to 5, backward 5-7.
  const StepEstimate one = estimate_step(two, costs, 1, kGPipe);
  EXPECT_DOUBLE_EQ(one.seconds, 7.0);
  EXPECT_EQ(one.receiving, (std::vector<double>{0.5, 0.5}));
  EXPECT_EQ(one.computing, (std::vector<double>{3.0, 3.0})) << "a forward and a backward each; transfers are not work";
  const StepEstimate four = estimate_step(two, costs, 4, kGPipe);
  EXPECT_EQ(four.receiving, (std::vector<double>{2.0, 2.0})) << "one message each way per micro-batch";
  costs.transfer.clear();
  EXPECT_DOUBLE_EQ(estimate_step(two, costs, 1, kGPipe).seconds, 6.0) << "no transfers measured: free";
}

TEST(ScheduleEstimate, FittingEvensOutTheStagesOfAnInterleavedPlan) {
  // ResNet-18's units at 128 px on one core (ms per micro-batch of 8, forward + backward).
  const UnitCosts costs = costs_from_passes({55.8, 41.2, 40.1, 30.4, 34.3, 28.9, 32.4, 44.6, 58.9, 0.2});
  StagePlan balanced = balance_stages(costs.per_step(4), 4);
  balanced.ranks = 2;
  const StagePlan fitted = fit_to_schedule(balanced, costs, 4, kGPipe);
  EXPECT_LT(estimate_step(fitted, costs, 4, kGPipe).seconds, estimate_step(balanced, costs, 4, kGPipe).seconds)
      << "the largest chunk was smallest, but one stage held more than the other";
  EXPECT_NEAR(estimate_step(fitted, costs, 4, kGPipe).seconds, 830.9, 0.05) << "the best of all 84 cuts";
  ASSERT_EQ(fitted.chunks(), 4);
  for (int c = 0; c < 4; ++c) EXPECT_LT(fitted.first(c), fitted.end(c));
  // With one chunk per stage the balanced plan is already the fastest.
  const StagePlan one_each = balance_stages(costs.per_step(4), 2);
  EXPECT_EQ(fit_to_schedule(one_each, costs, 4, kGPipe).bounds, one_each.bounds);
  // One micro-batch overlaps nothing, so every cut takes as long: the balanced one stays.
  EXPECT_EQ(fit_to_schedule(one_each, costs, 1, kGPipe).bounds, one_each.bounds);
}

std::string ops_text(const std::vector<PipelineOp>& ops) {  // "F0 F1 B0": micro-batches (chunk when interleaved)
  std::string text;
  for (const PipelineOp& op : ops)
    text += (text.empty() ? "" : " ") + std::string(op.forward ? "F" : "B") + std::to_string(op.micro_batch);
  return text;
}

TEST(PipelineSchedule, OneForwardOneBackwardAlternatesAfterAWarmUp) {
  const StagePlan two{{0, 1, 2}};
  EXPECT_EQ(ops_text(stage_ops(two, 0, 4, k1F1B)), "F0 F1 B0 F2 B1 F3 B2 B3");
  EXPECT_EQ(ops_text(stage_ops(two, 1, 4, k1F1B)), "F0 B0 F1 B1 F2 B2 F3 B3");
  EXPECT_EQ(ops_text(stage_ops(two, 0, 4, kGPipe)), "F0 F1 F2 F3 B3 B2 B1 B0");
  EXPECT_EQ(parse_pipeline_schedule("1f1b"), k1F1B);
  EXPECT_EQ(schedule_name(parse_pipeline_schedule("gpipe")), "gpipe");
  EXPECT_THROW(parse_pipeline_schedule("pipedream"), UsageError);
}

// Every stage runs each of its chunks' forwards and backwards exactly once, in an order that
// cannot deadlock (the replay would throw), with the step of fill-drain where the bubble
// formula says so and fewer activations held.
TEST(PipelineSchedule, OneForwardOneBackwardRunsEveryOpOnceAsFastAsFillDrainWithLessHeld) {
  const UnitCosts costs = costs_from_passes(std::vector<double>(12, 3.0));
  for (int stages = 2; stages <= 4; ++stages)
    for (int virtual_stages = 1; virtual_stages <= 3; ++virtual_stages) {
      if (12 % (stages * virtual_stages) != 0) continue;
      StagePlan plan = balance_stages(std::vector<double>(12, 1.0), stages * virtual_stages);
      plan.ranks = stages;
      for (int m = 1; m <= 9; ++m) {
        const std::string where = "K=" + std::to_string(stages) + " V=" + std::to_string(virtual_stages) +
                                  " M=" + std::to_string(m);
        for (int s = 0; s < stages; ++s) {
          std::vector<PipelineOp> ops = stage_ops(plan, s, m, k1F1B);
          std::multiset<std::tuple<int, int, bool>> seen, expected;
          for (const PipelineOp& op : ops) seen.insert({op.chunk, op.micro_batch, op.forward});
          for (const PipelineOp& op : stage_ops(plan, s, m, kGPipe)) expected.insert({op.chunk, op.micro_batch, op.forward});
          EXPECT_EQ(seen, expected) << where << " stage " << s;
          const int held = peak_held_activations(ops);
          EXPECT_LE(held, peak_held_activations(stage_ops(plan, s, m, kGPipe))) << where;
          if (virtual_stages == 1) EXPECT_LE(held, stages - s) << where << ": 1F1B holds at most K - s";
        }
        const double one_f_one_b = estimate_step(plan, costs, m, k1F1B).seconds;  // throws on a deadlock
        const double fill_drain = estimate_step(plan, costs, m, kGPipe).seconds;
        if (virtual_stages == 1 || m % stages == 0)
          EXPECT_DOUBLE_EQ(one_f_one_b, fill_drain) << where;
        else
          EXPECT_LE(one_f_one_b, 1.25 * fill_drain) << where << ": a short last group";
      }
    }
  // Interleaved, 8 micro-batches on 2 ranks of 2 chunks: fill-drain holds all 16, 1F1B 5 and 3.
  StagePlan interleaved{{0, 3, 6, 9, 12}, 2};
  EXPECT_EQ(peak_held_activations(stage_ops(interleaved, 0, 8, kGPipe)), 16);
  EXPECT_EQ(peak_held_activations(stage_ops(interleaved, 0, 8, k1F1B)), 5);
  EXPECT_EQ(peak_held_activations(stage_ops(interleaved, 1, 8, k1F1B)), 3);
}

using testing::run_ranks;

// Each rank measures its pairs, and all get the same figures, larger for the larger message.
TEST(PipelineTransfers, EveryPairOfNeighbouringRanksMeasuresAndAllAgree) {
  HISTOTRAIN_SKIP_WITHOUT_GLOO();
  for (int ranks : {2, 3}) {
    std::vector<std::vector<double>> seconds(ranks);
    run_ranks(ranks, [&](Communicator& comm) {
      seconds[comm.rank()] = measure_transfers(comm, {256, 4 << 20}, torch::kCPU);
    });
    for (int r = 0; r < ranks; ++r) EXPECT_EQ(seconds[r], seconds[0]) << ranks << " ranks, rank " << r;
    ASSERT_EQ(seconds[0].size(), 2u);
    EXPECT_GT(seconds[0][0], 0);
    EXPECT_GT(seconds[0][1], seconds[0][0]) << "16 MiB take longer than 1 KiB";
  }
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
  const UnitCosts costs = measure_unit_costs("resnet18", 5, 4, 32, torch::kCPU, torch::MemoryFormat::Contiguous);
  ASSERT_EQ(costs.forward.size(), 10u);
  for (size_t u = 0; u < 10; ++u) {
    EXPECT_GT(costs.forward[u], 0);
    EXPECT_GT(costs.backward[u], 0);
    EXPECT_GE(costs.update[u], 0);
  }
  EXPECT_DOUBLE_EQ(costs.per_step(2)[3], 2 * (costs.forward[3] + costs.backward[3]) + costs.update[3]);
}

// One training step of an unsplit ResNet (BatchNorm in training mode), and the same step as a
// K-stage pipeline over K rank threads with M micro-batches. With M = 1 BatchNorm sees the same
// batch in both, so the weights after the step must agree; with M > 1 the unsplit model is
// run micro-batch by micro-batch with the loss divided by M, which is what the pipeline computes.
struct StepOutcome {
  std::vector<torch::Tensor> gradients, weights, buffers;
  double loss_sum = 0;
};

StepOutcome unsplit_step(const std::string& arch, int micro_batches, const torch::Tensor& x, const torch::Tensor& y) {
  torch::manual_seed(4);
  ResNet model(arch, 5);
  model->train();
  auto optimizer = make_optimizer(model, OptimConfig{});
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

std::vector<StepOutcome> pipeline_step(const std::string& arch, int stages, int micro_batches, const torch::Tensor& x,
                                       const torch::Tensor& y, int virtual_stages, PipelineSchedule schedule) {
  std::vector<ResNet> models;
  for (int r = 0; r < stages; ++r) {  // built here: the global generator is shared by the threads
    torch::manual_seed(4);
    models.emplace_back(arch, 5);
    models.back()->train();
  }
  const auto units = static_cast<size_t>(models[0]->unit_count());
  StagePlan plan = balance_stages(std::vector<double>(units, 1.0), stages * virtual_stages);
  plan.ranks = stages;
  std::vector<StepOutcome> outcomes(stages);
  run_ranks(stages, [&](Communicator& comm) {
    const int r = comm.rank();
    PipelineStage stage(models[r], plan, comm, x.size(2), torch::MemoryFormat::Contiguous, schedule);
    auto optimizer = make_optimizer(models[r], OptimConfig{});
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
  });
  return outcomes;
}

double largest_difference(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double worst = 0;
  for (size_t k = 0; k < a.size(); ++k)
    if (a[k].defined() && b[k].defined())
      worst = std::max(worst, (a[k].to(torch::kFloat64) - b[k].to(torch::kFloat64)).abs().max().item<double>());
  return worst;
}

void expect_pipeline_matches_unsplit(int stages, int micro_batches, int virtual_stages = 1,
                                     PipelineSchedule schedule = kGPipe, const std::string& arch = "resnet18") {
  HISTOTRAIN_SKIP_WITHOUT_GLOO();  // ranks: skips the test, whose body holds only these calls
  SCOPED_TRACE(arch + ", K = " + std::to_string(stages) + ", M = " + std::to_string(micro_batches) +
               ", V = " + std::to_string(virtual_stages));
  torch::manual_seed(11);
  const auto x = torch::randn({8, 3, 64, 64});
  const auto y = torch::arange(8).remainder(5);
  const StepOutcome reference = unsplit_step(arch, micro_batches, x, y);
  const auto ranks = pipeline_step(arch, stages, micro_batches, x, y, virtual_stages, schedule);
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
// 1F1B runs the same forwards and backwards in another order: the same step.
TEST(Pipeline, OneForwardOneBackwardStepsLikeTheUnsplitModel) {
  expect_pipeline_matches_unsplit(2, 4, 1, k1F1B);
  expect_pipeline_matches_unsplit(3, 4, 1, k1F1B);
  expect_pipeline_matches_unsplit(2, 4, 2, k1F1B);
  expect_pipeline_matches_unsplit(2, 2, 2, k1F1B);
  expect_pipeline_matches_unsplit(3, 4, 2, k1F1B);  // 4 micro-batches in groups of 3: a short last group
}

// Deeper ResNets have more units to cut between (18 for ResNet-34, bottleneck blocks in ResNet-50):
// the same step as the unsplit model.
TEST(Pipeline, DeeperResNetsStepLikeTheUnsplitModel) {
  expect_pipeline_matches_unsplit(2, 4, 2, kGPipe, "resnet34");
  expect_pipeline_matches_unsplit(2, 4, 2, k1F1B, "resnet34");
  expect_pipeline_matches_unsplit(4, 2, 1, kGPipe, "resnet50");
}

// Stages on devices inside one process (cpu,cpu here): the same step as the unsplit model.
TEST(Pipeline, StagesOnDevicesInOneProcessStepLikeTheUnsplitModel) {
  torch::manual_seed(11);
  const auto x = torch::randn({8, 3, 64, 64});
  const auto y = torch::arange(8).remainder(5);
  const StepOutcome reference = unsplit_step("resnet18", 4, x, y);
  for (const PipelineSchedule schedule : {kGPipe, k1F1B}) {
    torch::manual_seed(4);
    ResNet model("resnet18", 5);
    model->train();
    const StagePlan plan = parse_split("5", model->unit_count(), 2);
    place_stages(model, plan, parse_devices("cpu,cpu"));
    GradScaler scaler(false);
    const auto result = local_pipeline_step(model, plan, schedule, Batch{x, y}, 4, {}, Precision::fp32, scaler);
    EXPECT_NEAR(result.loss_sum, reference.loss_sum, 1e-4) << schedule_name(schedule);
    std::vector<torch::Tensor> gradients;
    for (const auto& p : model->parameters()) gradients.push_back(p.grad());
    EXPECT_LT(largest_difference(gradients, reference.gradients), 1e-5) << schedule_name(schedule);
  }
  ResNet model("resnet18", 5);
  EXPECT_THROW(parse_devices("cpu"), UsageError);
  EXPECT_THROW(place_stages(model, parse_split("5", model->unit_count(), 2), parse_devices("cpu,cpu,cpu")), UsageError);
}

}  // namespace
}  // namespace histotrain
