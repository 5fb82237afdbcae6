// The scaling model's arithmetic: the link fit recovers the latency and bandwidth of a ring, the
// collectives follow the reducer's choices, and the step's timeline hides what backward can hide
// and no more.
#include <gtest/gtest.h>

#include "distributed/scaling_model.h"
#include "util/errors.h"

namespace histotrain {
namespace {

std::vector<AllReduceSample> ring_samples(const LinkModel& link, int ranks) {
  std::vector<AllReduceSample> out;
  for (double bytes = 4096; bytes <= 64e6; bytes *= 4) {
    Collective c;
    c.bytes = bytes;
    out.push_back({bytes, collective_seconds(link, c, ranks)});
  }
  return out;
}

TEST(ScalingModel, TheLinkFitRecoversLatencyAndBandwidthOfARing) {
  const LinkModel truth{250e-6, 8.0 / 1e9};  // 250 us, 1 Gbit/s
  for (const int ranks : {2, 3, 4, 16}) {
    const LinkModel fit = fit_link(ring_samples(truth, ranks), ranks);
    EXPECT_NEAR(fit.alpha_s, truth.alpha_s, 1e-9) << ranks << " ranks";
    EXPECT_NEAR(fit.beta_s_per_byte / truth.beta_s_per_byte, 1.0, 1e-9) << ranks << " ranks";
  }
}

TEST(ScalingModel, OneScatteredSmallMessageMovesNeitherLatencyNorBandwidthMuch) {
  const LinkModel truth{250e-6, 8.0 / 1e9};
  auto samples = ring_samples(truth, 2);
  samples.front().seconds += 4e-3;  // a late rank: 16 times the latency
  const LinkModel fit = fit_link(samples, 2);
  EXPECT_NEAR(fit.alpha_s, truth.alpha_s, 0.15 * truth.alpha_s);
  EXPECT_NEAR(fit.beta_s_per_byte / truth.beta_s_per_byte, 1.0, 0.01);
}

TEST(ScalingModel, TheLinkFitRefusesWhatCannotBeFitted) {
  EXPECT_THROW(fit_link({{4096, 1e-3}, {4096, 2e-3}}, 2), Error) << "one size";
  EXPECT_THROW(fit_link({{4096, 2e-3}, {1e6, 1e-3}}, 2), Error) << "faster when larger";
  EXPECT_THROW(fit_link({{4096, 1e-3}, {1e6, 2e-3}}, 1), Error) << "one rank has no link";
}

TEST(ScalingModel, RingTimesFollowTheTextbook) {
  const LinkModel link{1e-3, 1e-9};
  Collective reduce;
  reduce.bytes = 1e6;
  EXPECT_DOUBLE_EQ(collective_seconds(link, reduce, 2), 2 * (1e-3 + 1e-9 * 1e6 / 2));
  EXPECT_DOUBLE_EQ(collective_seconds(link, reduce, 8), 14 * (1e-3 + 1e-9 * 1e6 / 8));
  EXPECT_DOUBLE_EQ(collective_seconds(link, reduce, 1), 0);
  Collective gather = reduce;
  gather.kind = CollectiveKind::all_gather;
  EXPECT_DOUBLE_EQ(collective_seconds(link, gather, 4), 3 * (1e-3 + 1e-9 * 1e6));
}

StepProfile two_buckets(CompressionKind kind, int bytes_per_value) {
  StepProfile p;
  p.compute_s = 1.0;
  p.backward_s = 0.5;
  p.batch_per_rank = 16;
  p.compression = kind;
  p.buckets = {{1000000, bytes_per_value, 0.2}, {500000, bytes_per_value, 1.0}};
  return p;
}

TEST(ScalingModel, SixteenBitBucketsTravelAsTheReducerSendsThem) {
  const auto kinds = [](const StepProfile& p, int ranks) {
    std::vector<CollectiveKind> out;
    for (const auto& c : step_collectives(p, ranks)) out.push_back(c.kind);
    return out;
  };
  using K = CollectiveKind;
  StepProfile fp16 = two_buckets(CompressionKind::fp16, 2);
  EXPECT_EQ(kinds(fp16, 2), (std::vector<K>{K::all_gather, K::all_gather}));
  EXPECT_EQ(kinds(fp16, 4), (std::vector<K>{K::all_reduce, K::all_reduce}));
  fp16.backend = "nccl";
  EXPECT_EQ(kinds(fp16, 2), (std::vector<K>{K::all_reduce, K::all_reduce}));
  EXPECT_EQ(kinds(two_buckets(CompressionKind::bf16, 2), 64), (std::vector<K>{K::all_gather, K::all_gather}));
  const auto fp32 = step_collectives(two_buckets(CompressionKind::none, 4), 2);
  EXPECT_DOUBLE_EQ(fp32[0].bytes, 4e6);
  EXPECT_DOUBLE_EQ(fp32[0].ready_share, 0.2);
}

TEST(ScalingModel, BackwardHidesTheEarlyBucketsAndNotTheLastOne) {
  const StepProfile p = two_buckets(CompressionKind::none, 4);
  // A fast link: the first bucket (4 MB) is done long before backward ends; the last one (2 MB)
  // can only leave after backward, and is all that shows.
  const LinkModel fast{0, 1e-11};
  const ScalingPrediction quick = predict_step(p, fast, 2);
  EXPECT_NEAR(quick.post_s, 2e6 * 1e-11, 1e-12);
  EXPECT_NEAR(quick.step_s, 1.0 + 2e6 * 1e-11, 1e-12);
  // A slow link: the first bucket still occupies it when backward ends; the second queues behind.
  const LinkModel slow{0, 1e-7};  // 0.4 s for the first bucket, 0.2 s for the second
  const ScalingPrediction queued = predict_step(p, slow, 2);
  EXPECT_NEAR(queued.post_s, (0.1 + 0.4 + 0.2) - 0.5, 1e-12);
  EXPECT_NEAR(queued.link_busy_s, 0.6, 1e-12);
  EXPECT_NEAR(queued.efficiency, 1.0 / 1.2, 1e-12);
  EXPECT_NEAR(queued.images_per_s, 2 * 16 / 1.2, 1e-9);
  EXPECT_NEAR(queued.comm_share, 0.2 / 1.2, 1e-12);
}

TEST(ScalingModel, PowerSgdFactorsLeaveAfterItsArithmetic) {
  StepProfile p = two_buckets(CompressionKind::powersgd, 4);
  p.buckets = {{1000, 4, 0.9}};  // biases and BatchNorm
  p.compression_s = 0.03;
  p.powersgd_p_values = 10000;
  p.powersgd_q_values = 30000;
  const LinkModel link{1e-3, 1e-9};
  const ScalingPrediction s = predict_step(p, link, 2);
  const double p_time = 2 * (1e-3 + 1e-9 * 4e4 / 2), q_time = 2 * (1e-3 + 1e-9 * 12e4 / 2);
  EXPECT_NEAR(s.post_s, 0.03 + p_time + q_time, 1e-12);
}

TEST(ScalingModel, EfficiencyFallsWithRanksWhenMessagesCostLatency) {
  const StepProfile p = two_buckets(CompressionKind::none, 4);
  const LinkModel link{50e-6, 8.0 / 10e9};
  double last = 1.1;
  for (int ranks = 2; ranks <= 1024; ranks *= 2) {
    const ScalingPrediction s = predict_step(p, link, ranks);
    EXPECT_LE(s.efficiency, last) << ranks;
    EXPECT_GT(s.efficiency, 0);
    last = s.efficiency;
  }
  EXPECT_DOUBLE_EQ(predict_step(p, link, 1).efficiency, 1.0) << "one rank sends nothing";
}

}  // namespace
}  // namespace histotrain
