// Compressed gradients between data-parallel ranks (distributed/grad_compression.h, distributed/power_sgd.h):
// fp16 and bf16 averages within their rounding of the fp32 average, PowerSGD exact when its
// rank reaches the matrix's smaller side, its error feedback losing nothing, and its one-pass
// kernels against ATen's matrix products. Ranks are
// threads of this process (test_ranks.h); whole runs: test_dist_cli.cpp.
#include <gtest/gtest.h>

#include "distributed/grad_compression.h"
#include "distributed/grad_reducer.h"
#include "distributed/power_sgd.h"
#include "distributed/power_sgd_kernels.h"
#include "test_ranks.h"
#include "util/errors.h"

namespace histotrain {
namespace {

// Rank r's gradients: a vector and a matrix, large enough that an fp16 sum would overflow
// (65,504) without the pre-division.
std::vector<torch::Tensor> gradients_of_rank(int r) {
  auto generator = at::detail::createCPUGenerator(100 + r);
  auto vector = at::randn({1000}, generator, torch::TensorOptions()) * 3000;
  vector[0] = 40000 + r;  // 80,001 summed over two ranks
  return {vector, at::randn({20, 30}, generator, torch::TensorOptions())};
}

// Every rank's parameters get gradients_of_rank(r) through backward (the reducer's hooks), and
// the reducer's result comes back.
std::vector<std::vector<torch::Tensor>> reduce_on_ranks(int ranks, GradCompression compression, int steps = 1) {
  std::vector<std::vector<torch::Tensor>> results(static_cast<size_t>(ranks));
  testing::run_ranks(ranks, [&](Communicator& comm) {
    const int r = comm.rank();
    std::vector<torch::Tensor> params = {torch::zeros({1000}, torch::requires_grad()),
                                         torch::zeros({20, 30}, torch::requires_grad())};
    GradientReducer reducer(params, comm, 1u << 20, compression, /*seed=*/3);
    const auto grads = gradients_of_rank(r);
    for (int step = 0; step < steps; ++step) {
      for (auto& p : params) p.mutable_grad() = torch::Tensor();
      ((params[0] * grads[0]).sum() + (params[1] * grads[1]).sum()).backward();
      reducer.finish();
    }
    for (auto& p : params) results[static_cast<size_t>(r)].push_back(p.grad().clone());
  });
  return results;
}

std::vector<std::vector<torch::Tensor>> reduce_on_two_ranks(GradCompression compression, int steps = 1) {
  return reduce_on_ranks(2, compression, steps);
}

TEST(GradCompression, ParsesItsSpellingsAndRefusesOthers) {
  EXPECT_EQ(GradCompression::parse("powersgd", 5).rank, 4);
  EXPECT_EQ(GradCompression::parse("powersgd:16", 5).rank, 16);
  EXPECT_EQ(GradCompression::parse("bf16", 5).kind, CompressionKind::bf16);
  for (const char* bad : {"fp8", "powersgd:0", "powersgd:65", "powersgd:", "fp16:2", "powersgd:x"})
    EXPECT_THROW(GradCompression::parse(bad, 5), UsageError) << bad;
  EXPECT_THROW(GradCompression::parse("none", -1), UsageError);
  // The typed choice reads back what it writes, and refuses what parse refuses.
  for (const char* text : {"none", "fp16", "bf16", "powersgd:1", "powersgd:64"})
    EXPECT_EQ(CompressionChoice::parse(text)->text(), text);
  EXPECT_EQ(CompressionChoice::parse("powersgd")->text(), "powersgd:4");
  EXPECT_FALSE(CompressionChoice::parse("powersgd:007"));
}

// On Gloo 16-bit buckets travel by all-gather below 4 ranks and fp16 by all-reduce from 4 on:
// both ways are checked.
TEST(GradCompression, Fp16AndBf16AveragesAreTheFp32AverageWithinTheirRounding) {
  HISTOTRAIN_SKIP_WITHOUT_GLOO();
  for (const int ranks : {2, 4}) {
    std::vector<std::vector<torch::Tensor>> inputs;
    for (int r = 0; r < ranks; ++r) inputs.push_back(gradients_of_rank(r));
    for (const auto& [kind, bound] : {std::pair<CompressionKind, double>{CompressionKind::fp16, std::ldexp(1.0, -10)},
                                      std::pair<CompressionKind, double>{CompressionKind::bf16, std::ldexp(1.0, -7)}}) {
      GradCompression compression;
      compression.kind = kind;
      const auto results = reduce_on_ranks(ranks, compression);
      for (size_t k = 0; k < 2; ++k) {
        torch::Tensor exact = torch::zeros_like(inputs[0][k]), scale = torch::zeros_like(inputs[0][k]);
        for (const auto& in : inputs) {
          exact += in[k] / ranks;
          scale = torch::max(scale, in[k].abs());
        }
        // Each rank's value rounded once, the sum (or the mean) once more: within twice the unit
        // roundoff of the largest input (and an fp16 sum of halves, a few roundings more at 4 ranks).
        const double allowed = bound * (ranks == 2 ? 1 : 2);
        const char* name = kind == CompressionKind::fp16 ? "fp16" : "bf16";
        EXPECT_TRUE(((results[0][k] - exact).abs() <= scale * allowed + 1e-6).all().item<bool>())
            << name << " on " << ranks << " ranks, tensor " << k << ": worst "
            << ((results[0][k] - exact).abs() / (scale + 1e-6)).max().item<double>();
        for (int r = 1; r < ranks; ++r)
          EXPECT_TRUE(torch::equal(results[0][k], results[static_cast<size_t>(r)][k])) << "every rank holds the same average";
        EXPECT_TRUE(std::isfinite(results[0][k].abs().max().item<double>())) << name << ": no overflow";
      }
    }
  }
}

// Shapes around the kernels' edges: columns not a multiple of their 8-float vectors, more columns
// than one block of column_factors (1,024), odd row counts (the last row without a partner), more
// rows than one thread's share, the ranks compiled in (1, 2, 4) and one that is not (3).
TEST(PowerSgdKernels, AgreeWithAtensMatrixProducts) {
  const std::vector<LowRankShape> shapes = {{3, 5, 2}, {64, 1500, 4}, {301, 2304, 4}, {17, 1031, 1}, {10, 70, 3}};
  for (const LowRankShape s : shapes) {
    auto generator = at::detail::createCPUGenerator(s.rows + s.cols);
    auto randn = [&](int64_t a, int64_t b) { return at::randn({a, b}, generator, torch::TensorOptions()); };
    const torch::Tensor error = randn(s.rows, s.cols), grad = randn(s.rows, s.cols);
    const torch::Tensor p_old = randn(s.rows, s.rank), q_old_t = randn(s.rank, s.cols), q_t = randn(s.rank, s.cols);
    const std::string where = std::to_string(s.rows) + " x " + std::to_string(s.cols) + ", rank " + std::to_string(s.rank);

    torch::Tensor fused = error.clone(), p = torch::empty({s.rows, s.rank});
    refresh_and_project(s, fused.data_ptr<float>(), grad.data_ptr<float>(), p_old.data_ptr<float>(),
                        q_old_t.data_ptr<float>(), q_t.data_ptr<float>(), p.data_ptr<float>());
    const torch::Tensor m = error - p_old.mm(q_old_t) + grad;
    EXPECT_TRUE(torch::allclose(fused, m, 1e-4, 1e-4)) << "M = error - P_old Q_old^T + G, " << where;
    EXPECT_TRUE(torch::allclose(p, m.mm(q_t.t()), 1e-3, 1e-3)) << "P = M Q, " << where;

    // The correction now and the gradient at the next step: the same bits as both at once.
    torch::Tensor in_two = error.clone();
    refresh_and_project(s, in_two.data_ptr<float>(), nullptr, p_old.data_ptr<float>(), q_old_t.data_ptr<float>(),
                        nullptr, nullptr);
    refresh_and_project(s, in_two.data_ptr<float>(), grad.data_ptr<float>(), nullptr, nullptr, nullptr, nullptr);
    EXPECT_TRUE(torch::equal(in_two, fused)) << where;

    torch::Tensor q_local_t = torch::empty({s.rank, s.cols});
    column_factors(s, m.data_ptr<float>(), p.data_ptr<float>(), q_local_t.data_ptr<float>());
    EXPECT_TRUE(torch::allclose(q_local_t, p.t().mm(m), 1e-3, 1e-2)) << "Q^T = P^T M, " << where;

  }
}

TEST(PowerSgd, ARankAtLeastTheSmallerSideGivesTheExactMean) {
  HISTOTRAIN_SKIP_WITHOUT_GLOO();
  // A wide matrix and a tall one (viewed transposed): rank 8 covers both smaller sides.
  std::vector<std::vector<torch::Tensor>> results(2);
  std::vector<torch::Tensor> expected;
  auto local = [](int r) {
    auto generator = at::detail::createCPUGenerator(7 + r);
    return std::vector<torch::Tensor>{at::randn({6, 40}, generator, torch::TensorOptions()),
                                      at::randn({50, 2, 2, 1}, generator, torch::TensorOptions())};
  };
  for (size_t k = 0; k < 2; ++k) expected.push_back((local(0)[k] + local(1)[k]) / 2);
  testing::run_ranks(2, [&](Communicator& comm) {
    std::vector<torch::Tensor> params = {torch::zeros({6, 40}), torch::zeros({50, 2, 2, 1})};
    PowerSgd power(params, /*rank=*/8, /*seed=*/1);
    const auto mine = local(comm.rank());
    for (size_t k = 0; k < 2; ++k) params[k].mutable_grad() = mine[k].clone();
    power.reduce(comm);
    for (auto& p : params) results[static_cast<size_t>(comm.rank())].push_back(p.grad().clone());
  });
  for (int r = 0; r < 2; ++r)
    for (size_t k = 0; k < 2; ++k)
      EXPECT_TRUE(torch::allclose(results[static_cast<size_t>(r)][k], expected[k], 1e-4, 1e-5)) << r << " " << k;
}

TEST(PowerSgd, ErrorFeedbackCarriesWhatTheApproximationMissed) {
  HISTOTRAIN_SKIP_WITHOUT_GLOO();
  // One rank, rank 1 of a random 10 x 12 matrix: most of it is missed at first. What was sent
  // plus what is still owed is always the whole gradient.
  testing::run_ranks(1, [&](Communicator& comm) {
    torch::Tensor param = torch::zeros({10, 12});
    PowerSgd power({param}, /*rank=*/1, /*seed=*/2);
    auto generator = at::detail::createCPUGenerator(5);
    const torch::Tensor gradient = at::randn({10, 12}, generator, torch::TensorOptions());
    torch::Tensor sent = torch::zeros({10, 12});
    for (int step = 0; step < 12; ++step) {
      param.mutable_grad() = step == 0 ? gradient.clone() : torch::zeros({10, 12});
      power.reduce(comm);
      sent += param.grad();
      const torch::Tensor owed = power.rank_state()[0].second;
      EXPECT_TRUE(torch::allclose(sent + owed, gradient, 1e-4, 1e-5)) << "step " << step;
      if (step == 0) EXPECT_GT(owed.norm().item<double>(), 0.5 * gradient.norm().item<double>());
    }
    // A rank-1 step sends the largest direction left: after as many steps as the rank of the
    // matrix (10), nothing is owed.
    EXPECT_LT(power.rank_state()[0].second.norm().item<double>(), 1e-3 * gradient.norm().item<double>());
  });
}

TEST(PowerSgd, TheReducerCompressesMatricesOnlyAfterItsStartStep) {
  HISTOTRAIN_SKIP_WITHOUT_GLOO();
  GradCompression compression = GradCompression::parse("powersgd:1", /*start_step=*/1);
  const auto a = gradients_of_rank(0), b = gradients_of_rank(1);
  const auto first = reduce_on_two_ranks(compression, /*steps=*/1);
  EXPECT_TRUE(torch::allclose(first[0][1], (a[1] + b[1]) / 2, 1e-5, 1e-6)) << "step 0: uncompressed";
  const auto later = reduce_on_two_ranks(compression, /*steps=*/2);
  EXPECT_FALSE(torch::allclose(later[0][1], (a[1] + b[1]) / 2, 1e-2, 1e-2)) << "step 1: a rank-1 approximation";
  EXPECT_TRUE(torch::equal(later[0][1], later[1][1])) << "the same on every rank";
  EXPECT_TRUE(torch::allclose(later[0][0], (a[0] + b[0]) / 2, 1e-5, 1e-3)) << "vectors stay uncompressed";
}

}  // namespace
}  // namespace histotrain
