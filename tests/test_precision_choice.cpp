// --amp auto: the choice from injected step times, the cache, and rank 0's decision on every rank.
#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include "core/compat.h"
#include "test_ranks.h"
#include "test_util.h"
#include "train/precision_choice.h"

namespace histotrain {
namespace {

using testing::ScratchDir;

PrecisionProblem cpu_problem() {
  PrecisionProblem p;
  p.machine = "test CPU, 2 cores, AVX2";
  p.torch_version = "1.13.0";
  p.device = "cpu";
  p.arch = "resnet18";
  p.image_size = 64;
  p.batch_size = 32;
  p.threads = 2;
  p.candidates = precision_candidates(torch::kCPU, false);
  return p;
}

// A timer that answers from a table of seconds per step, and counts its calls.
struct TableTimer {
  std::map<std::string, double> seconds;
  std::shared_ptr<int> calls = std::make_shared<int>(0);
  StepTimer timer() const {
    return [table = seconds, calls = calls](const PrecisionCandidate& c) {
      ++*calls;
      return table.at(c.name());
    };
  }
};

const TableTimer kBf16Slower{{{"fp32", 0.10}, {"fp32+channels-last", 0.11}, {"bf16+channels-last", 0.128}}};
const TableTimer kBf16Faster{{{"fp32", 0.10}, {"fp32+channels-last", 0.09}, {"bf16+channels-last", 0.05}}};

TEST(PrecisionChoice, CandidatesOnCpuAndCuda) {
  std::vector<std::string> names;
  for (const auto& c : precision_candidates(torch::kCPU, false)) names.push_back(c.name());
  EXPECT_EQ(names, (std::vector<std::string>{"fp32", "fp32+channels-last", "bf16+channels-last"}));
  names.clear();
  for (const auto& c : precision_candidates(torch::Device(torch::kCUDA, 0), true)) names.push_back(c.name());
  EXPECT_EQ(names, (std::vector<std::string>{"fp32+channels-last", "bf16+channels-last", "fp16+channels-last"}));
}

TEST(PrecisionChoice, PicksFp32WhenBf16IsSlower) {
  ScratchDir dir;
  const auto d = choose_precision(cpu_problem(), kBf16Slower.timer(), dir / "p.json", nullptr);
  EXPECT_EQ(d.chosen.name(), "fp32");
  EXPECT_FALSE(d.from_cache);
  ASSERT_EQ(d.images_per_second.size(), 3u);
  EXPECT_NEAR(d.images_per_second[0], 320, 1e-6);   // 32 images in 0.10 s
  EXPECT_NEAR(d.images_per_second[2], 250, 1e-6);   // 32 images in 0.128 s
}

TEST(PrecisionChoice, PicksBf16WhenItIsFaster) {
  ScratchDir dir;
  const auto d = choose_precision(cpu_problem(), kBf16Faster.timer(), dir / "p.json", nullptr);
  EXPECT_EQ(d.chosen.name(), "bf16+channels-last");
  EXPECT_EQ(d.chosen.precision, Precision::bf16);
  EXPECT_TRUE(d.chosen.channels_last);
}

// Every candidate gets a first step and a timed one; then those that cannot win stop being timed.
TEST(PrecisionChoice, CandidatesThatCannotWinStopBeingTimed) {
  ScratchDir dir;
  std::map<std::string, int> calls;
  const std::map<std::string, double> seconds = {{"fp32", 0.10}, {"fp32+channels-last", 0.102}, {"bf16+channels-last", 1.5}};
  const StepTimer timer = [&](const PrecisionCandidate& c) {
    ++calls[c.name()];
    return seconds.at(c.name());
  };
  const auto d = choose_precision(cpu_problem(), timer, dir / "p.json", nullptr);
  EXPECT_EQ(d.chosen.name(), "fp32");
  EXPECT_EQ(calls["bf16+channels-last"], 1) << "15x slower in its first step: never timed again";
  EXPECT_EQ(calls["fp32"], 4) << "a first step and 3 timed ones";
  EXPECT_EQ(calls["fp32+channels-last"], 4) << "2% slower: still in the race";
  EXPECT_NEAR(d.images_per_second[2], 32 / 1.5, 1e-9) << "reported from the one step it ran";
  // 1.6x slower in timed steps (but not in its first): dropped after the first round.
  calls.clear();
  const std::map<std::string, double> later = {{"fp32", 0.10}, {"fp32+channels-last", 0.16}, {"bf16+channels-last", 0.25}};
  const StepTimer timer2 = [&](const PrecisionCandidate& c) {
    ++calls[c.name()];
    return later.at(c.name());
  };
  choose_precision(cpu_problem(), timer2, dir / "q.json", nullptr);
  EXPECT_EQ(calls["fp32+channels-last"], 2);
  EXPECT_EQ(calls["bf16+channels-last"], 2);
  EXPECT_EQ(calls["fp32"], 4);
}

// A busy machine: fp32's steps swing between 0.05 and 0.07 s around channels-last's 0.06, so no
// three rounds in a row agree, and the two halves of the eight rounds choose differently (fp32,
// then channels-last, 20% apart). The run uses the choice; nothing is cached: the next run
// measures again.
TEST(PrecisionChoice, TimingsThatDoNotSettleAreUsedButNotCached) {
  ScratchDir dir;
  int fp32_calls = 0;
  // fp32's first step, then its timed rounds: fast, fast, slow, fast | slow, fast, slow, fast.
  const std::vector<double> fp32_steps = {0.05, 0.05, 0.05, 0.07, 0.05, 0.07, 0.05, 0.07, 0.05};
  const StepTimer busy = [&](const PrecisionCandidate& c) {
    if (c.name() == "fp32") return fp32_steps.at(static_cast<size_t>(fp32_calls++));
    return c.name() == "fp32+channels-last" ? 0.06 : 0.12;
  };
  const auto d = choose_precision(cpu_problem(), busy, dir / "p.json", nullptr);
  EXPECT_FALSE(d.stable);
  EXPECT_EQ(d.rounds, 8) << "rounds go on while they disagree";
  EXPECT_FALSE(std::filesystem::exists(dir / "p.json")) << "an unsettled decision is not cached";
  EXPECT_NE(d.describe(cpu_problem().candidates).find("unsettled (not cached)"), std::string::npos);
  EXPECT_EQ(d.to_json(cpu_problem().candidates)["settled"], false);
}

// One disturbed round among steady ones: more rounds are timed, the winner's steps settle,
// and the decision is cached with the rounds it took.
TEST(PrecisionChoice, OneDisturbedRoundMeansMoreRoundsThenACachedDecision) {
  ScratchDir dir;
  int fp32_calls = 0;
  const StepTimer once_disturbed = [&](const PrecisionCandidate& c) {
    if (c.name() == "fp32") return ++fp32_calls == 2 ? 0.40 : 0.05;  // its first timed step hit by load
    return c.name() == "fp32+channels-last" ? 0.09 : 0.12;
  };
  const auto d = choose_precision(cpu_problem(), once_disturbed, dir / "p.json", nullptr);
  EXPECT_EQ(d.chosen.name(), "fp32");
  EXPECT_TRUE(d.stable);
  EXPECT_GT(d.rounds, 3);
  EXPECT_TRUE(std::filesystem::exists(dir / "p.json"));
  const auto steady = choose_precision(cpu_problem(), kBf16Slower.timer(), dir / "q.json", nullptr);
  EXPECT_EQ(steady.rounds, 3) << "steady timings take the three rounds only";
  EXPECT_TRUE(steady.stable);
}

TEST(PrecisionChoice, WithinTheMarginFullPrecisionStays) {
  EXPECT_EQ(fastest_candidate({100, 102, 101}), 0u);  // 2% is noise
  EXPECT_EQ(fastest_candidate({100, 104, 101}), 1u);
  EXPECT_EQ(fastest_candidate({100, 104, 110}), 2u);
}

TEST(PrecisionChoice, TheCacheIsReusedForTheSameProblem) {
  ScratchDir dir;
  const auto first = choose_precision(cpu_problem(), kBf16Faster.timer(), dir / "p.json", nullptr);
  const StepTimer must_not_run = [](const PrecisionCandidate&) -> double {
    ADD_FAILURE() << "a cached decision was measured again";
    return 1;
  };
  const auto second = choose_precision(cpu_problem(), must_not_run, dir / "p.json", nullptr);
  EXPECT_TRUE(second.from_cache);
  EXPECT_EQ(second.chosen, first.chosen);
  EXPECT_EQ(second.images_per_second, first.images_per_second);
}

TEST(PrecisionChoice, AnotherLibTorchOrImageSizeMeasuresAgain) {
  ScratchDir dir;
  choose_precision(cpu_problem(), kBf16Faster.timer(), dir / "p.json", nullptr);
  PrecisionProblem newer_torch = cpu_problem();
  newer_torch.torch_version = "2.11.0";
  PrecisionProblem larger = cpu_problem();
  larger.image_size = 224;
  PrecisionProblem other_machine = cpu_problem();
  other_machine.machine = "test CPU, 2 cores, AVX2 AVX512F AVX512_BF16";
  for (const PrecisionProblem& changed : {newer_torch, larger, other_machine}) {
    TableTimer timer = kBf16Slower;
    timer.calls = std::make_shared<int>(0);
    const auto d = choose_precision(changed, timer.timer(), dir / "p.json", nullptr);
    EXPECT_FALSE(d.from_cache) << changed.key().dump();
    EXPECT_GT(*timer.calls, 0);
    EXPECT_EQ(d.chosen.name(), "fp32") << "measured anew, not the cached bf16";
  }
  // All four decisions are kept side by side.
  const auto again = choose_precision(cpu_problem(), kBf16Slower.timer(), dir / "p.json", nullptr);
  EXPECT_TRUE(again.from_cache);
  EXPECT_EQ(again.chosen.name(), "bf16+channels-last");
}

TEST(PrecisionChoice, ADamagedCacheCostsAMeasurementNotARun) {
  ScratchDir dir;
  for (const std::string& bytes : {std::string("{not json"), std::string("[1, {\"key\": 3}]"), std::string("\0\0", 2)}) {
    std::ofstream(dir / "p.json", std::ios::binary) << bytes;
    const auto d = choose_precision(cpu_problem(), kBf16Faster.timer(), dir / "p.json", nullptr);
    EXPECT_FALSE(d.from_cache);
    EXPECT_EQ(d.chosen.name(), "bf16+channels-last");
  }
  // A cache that cannot be written (its folder is a file) is a warning, not an error.
  std::ofstream(dir / "file") << "x";
  EXPECT_NO_THROW(choose_precision(cpu_problem(), kBf16Faster.timer(), dir / "file" / "p.json", nullptr));
}

TEST(PrecisionChoice, EveryRankTakesRankZerosDecision) {
  HISTOTRAIN_SKIP_WITHOUT_GLOO();
  ScratchDir dir;
  std::vector<std::string> chosen(2);
  // Rank 0 finds bf16 faster, rank 1 fp32: both train in bf16.
  testing::run_ranks(2, [&](Communicator& comm) {
    const TableTimer& timer = comm.rank() == 0 ? kBf16Faster : kBf16Slower;
    chosen[comm.rank()] =
        choose_precision(cpu_problem(), timer.timer(), dir / ("rank" + std::to_string(comm.rank()) + ".json"), &comm)
            .chosen.name();
  });
  EXPECT_EQ(chosen, (std::vector<std::string>{"bf16+channels-last", "bf16+channels-last"}));
  // Now rank 0's cache decides: rank 1's own cache file (which holds nothing) is never read.
  testing::run_ranks(2, [&](Communicator& comm) {
    const StepTimer must_not_run = [](const PrecisionCandidate&) -> double {
      ADD_FAILURE() << "rank 0's cached decision should have been taken";
      return 1;
    };
    const auto d = choose_precision(cpu_problem(), must_not_run, dir / "rank0.json", &comm);
    EXPECT_TRUE(d.from_cache);
    chosen[comm.rank()] = d.chosen.name();
  });
  EXPECT_EQ(chosen, (std::vector<std::string>{"bf16+channels-last", "bf16+channels-last"}));
}

TEST(PrecisionChoice, TimingRealStepsLeavesTheRandomGeneratorAsItWas) {
  compat::manual_seed(3);
  const torch::Tensor before = compat::cpu_rng_state().clone();
  const StepTimer timer = model_step_timer("resnet18", 5, 4, 32, torch::kCPU);
  for (const auto& c : precision_candidates(torch::kCPU, false)) EXPECT_GT(timer(c), 0) << c.name();
  EXPECT_TRUE(torch::equal(compat::cpu_rng_state(), before));
}

}  // namespace
}  // namespace histotrain
