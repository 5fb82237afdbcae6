#include "train/precision_choice.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>

#include "core/compat.h"
#include "distributed/communicator.h"
#include "model/resnet.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/files.h"
#include "util/json_file.h"
#include "util/json_text.h"

namespace histotrain {

namespace {

constexpr int kTimedRounds = 3;   // each round times every candidate once, so drift hits all alike
// On a busy machine one round can mislead (a several-fold gap between fp32 and channels-last
// that a quiet run did not show was cached once). So rounds go on, up to kMaxRounds,
// while the last kTimedRounds rounds disagree on the winner. After kMaxRounds the decision holds
// when both halves of the rounds pick the same winner, or when the candidates that won rounds
// are within kCloseCall of each other (either is then as good); else it is used for this run but
// never cached.
constexpr int kMaxRounds = 8;
constexpr double kCloseCall = 0.10;
// A candidate this much slower than the best cannot win and is dropped: on a CPU without bf16
// instructions a bf16 step takes many times an fp32 one, and timing it again and again would
// cost the start-up a minute. First steps (which also create oneDNN/cuDNN primitives) are compared more loosely.
constexpr double kHopelessFirstStep = 3.0;
constexpr double kHopelessTimedStep = 1.5;
constexpr size_t kMaxCacheEntries = 64;
constexpr std::uintmax_t kMaxCacheBytes = 1 << 20;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The cache file's decisions, by key; empty when there is none or it cannot be read (a damaged
// cache costs a measurement, never a failed run).
nlohmann::json read_cache(const std::filesystem::path& file) {
  std::string text;
  try {
    text = read_regular_file(file, kMaxCacheBytes);
  } catch (const Error&) {
    return nlohmann::json::array();
  }
  nlohmann::json entries = parse_json_or_null(text);
  return entries.is_array() ? entries : nlohmann::json::array();
}

std::optional<PrecisionDecision> cached_decision(const nlohmann::json& entries, const PrecisionProblem& problem) {
  const nlohmann::json key = problem.key();
  for (const auto& entry : entries) {
    if (!entry.is_object() || entry.value("key", nlohmann::json()) != key) continue;
    const auto figures = entry.value("images_per_second", nlohmann::json());
    if (!figures.is_array() || figures.size() != problem.candidates.size()) continue;
    PrecisionDecision decision;
    for (const auto& f : figures) decision.images_per_second.push_back(f.is_number() ? f.get<double>() : 0.0);
    decision.chosen = problem.candidates[fastest_candidate(decision.images_per_second)];
    decision.from_cache = true;
    return decision;
  }
  return std::nullopt;
}

// Rank 0 only. A cache that cannot be written (a read-only home) costs a measurement next time.
void store_decision(const std::filesystem::path& file, const PrecisionProblem& problem, const PrecisionDecision& decision,
                    const std::function<void(const std::string&)>& warn) {
  nlohmann::json kept = nlohmann::json::array();
  for (const auto& entry : read_cache(file))
    if (entry.is_object() && entry.value("key", nlohmann::json()) != problem.key()) kept.push_back(entry);
  kept.push_back({{"key", problem.key()}, {"images_per_second", decision.images_per_second}});
  while (kept.size() > kMaxCacheEntries) kept.erase(kept.begin());  // the oldest first
  try {
    std::filesystem::create_directories(file.parent_path());
    write_file_atomically(file, json_text(kept, 1) + "\n");
  } catch (const std::exception& e) {
    warn(std::string("--amp auto: the decision could not be cached (") + e.what() + ")");
  }
}

// Drops the candidates whose fastest step is more than `factor` times the fastest of all.
void drop_hopeless(const std::vector<std::vector<double>>& seconds, std::vector<bool>& racing, double factor) {
  double best = std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < seconds.size(); ++i)
    if (racing[i]) best = std::min(best, *std::min_element(seconds[i].begin(), seconds[i].end()));
  for (size_t i = 0; i < seconds.size(); ++i)
    if (racing[i] && *std::min_element(seconds[i].begin(), seconds[i].end()) > factor * best) racing[i] = false;
}

struct Measurement {
  std::vector<double> images_per_second;
  int rounds = 0;
  bool stable = true;
  double spread = 1;  // the winner's slowest timed step over its fastest, in the last rounds
};

// The winner of round r among the candidates timed in it.
size_t round_winner(const std::vector<std::vector<double>>& timed, size_t r) {
  std::vector<double> rates(timed.size(), 0);
  for (size_t i = 0; i < timed.size(); ++i)
    if (timed[i].size() > r) rates[i] = 1 / std::max(1e-12, timed[i][r]);
  return fastest_candidate(rates);
}

// The winner's slowest timed step over its fastest in the last rounds: how noisy the machine was.
double spread_of_last_rounds(const std::vector<std::vector<double>>& timed, size_t choice) {
  const auto& steps = timed[choice];
  if (steps.empty()) return 1;
  const auto first = steps.end() - std::min<std::ptrdiff_t>(kTimedRounds, static_cast<std::ptrdiff_t>(steps.size()));
  return *std::max_element(first, steps.end()) / std::max(1e-12, *std::min_element(first, steps.end()));
}

bool last_rounds_agree(const std::vector<std::vector<double>>& timed, size_t choice, size_t rounds) {
  const auto last = static_cast<size_t>(kTimedRounds);
  if (rounds < last) return false;
  for (size_t r = rounds - last; r < rounds; ++r)
    if (round_winner(timed, r) != choice) return false;
  return true;
}

// The choice from the median of rounds [from, to) of each candidate timed in all of them.
size_t choice_of_rounds(const std::vector<std::vector<double>>& timed, size_t from, size_t to) {
  std::vector<double> rates(timed.size(), 0);
  for (size_t i = 0; i < timed.size(); ++i)
    if (timed[i].size() >= to) rates[i] = 1 / std::max(1e-12, median(std::vector<double>(timed[i].begin() + from, timed[i].begin() + to)));
  return fastest_candidate(rates);
}

// After every round was timed: do the two halves agree, or are the candidates that won rounds
// a close call?
bool halves_agree_or_close(const std::vector<std::vector<double>>& timed, const std::vector<double>& rates,
                           size_t choice, size_t rounds) {
  if (choice_of_rounds(timed, 0, rounds / 2) == choice_of_rounds(timed, rounds / 2, rounds)) return true;
  for (size_t r = 0; r < rounds; ++r) {
    const size_t winner = round_winner(timed, r);
    if (rates[winner] > rates[choice] * (1 + kCloseCall) || rates[winner] < rates[choice] * (1 - kCloseCall))
      return false;
  }
  return true;
}

std::vector<double> rates_of(const PrecisionProblem& problem, const std::vector<std::vector<double>>& first,
                             const std::vector<std::vector<double>>& timed) {
  std::vector<double> images_per_second;
  for (size_t i = 0; i < first.size(); ++i)
    images_per_second.push_back(problem.batch_size / std::max(1e-9, median(timed[i].empty() ? first[i] : timed[i])));
  return images_per_second;
}

// A first (warm-up) step of every candidate, then rounds of one timed step of each candidate still
// in the race, at least kTimedRounds and more while the decision is unsettled. Images/s from the
// median timed step; a candidate dropped after its first step is reported from that step.
Measurement measure(const PrecisionProblem& problem, const StepTimer& timer) {
  const size_t n = problem.candidates.size();
  std::vector<std::vector<double>> first(n), timed(n);
  std::vector<bool> racing(n, true);
  for (size_t i = 0; i < n; ++i) first[i].push_back(timer(problem.candidates[i]));
  drop_hopeless(first, racing, kHopelessFirstStep);
  Measurement m;
  for (int round = 0; round < kMaxRounds; ++round) {
    for (size_t i = 0; i < n; ++i)
      if (racing[i]) timed[i].push_back(timer(problem.candidates[i]));
    m.rounds = round + 1;
    // A candidate's best step so far, its first included: one step slowed by a busy machine
    // must not drop the candidate that would win.
    std::vector<std::vector<double>> steps = timed;
    for (size_t i = 0; i < n; ++i) steps[i].insert(steps[i].end(), first[i].begin(), first[i].end());
    drop_hopeless(steps, racing, kHopelessTimedStep);
    if (m.rounds < kTimedRounds) continue;
    m.images_per_second = rates_of(problem, first, timed);
    const size_t choice = fastest_candidate(m.images_per_second);
    m.spread = spread_of_last_rounds(timed, choice);
    m.stable = last_rounds_agree(timed, choice, static_cast<size_t>(m.rounds));
    if (m.stable) break;
    if (m.rounds == kMaxRounds) m.stable = halves_agree_or_close(timed, m.images_per_second, choice, kMaxRounds);
  }
  return m;
}

// Rank 0's value of `value` on every rank (an index, or -1).
int64_t from_rank0(int64_t value, Communicator* comm) {
  if (!comm) return value;
  auto t = torch::tensor({value}, torch::kLong);
  comm->broadcast_from_rank0({t});
  return t[0].item<int64_t>();
}

}  // namespace

std::string PrecisionCandidate::name() const {
  return std::string(precision == Precision::fp32 ? "fp32" : precision_name(precision)) +
         (channels_last ? "+channels-last" : "");
}

std::vector<PrecisionCandidate> precision_candidates(const torch::Device& device, bool channels_last_only) {
  std::vector<PrecisionCandidate> all = {{Precision::fp32, false}, {Precision::fp32, true}, {Precision::bf16, true}};
  if (device.is_cuda()) all.push_back({Precision::fp16, true});
  if (channels_last_only) all.erase(all.begin());
  return all;
}

nlohmann::json PrecisionProblem::key() const {
  nlohmann::json names = nlohmann::json::array();
  for (const auto& c : candidates) names.push_back(c.name());
  return {{"machine", machine},  {"torch", torch_version}, {"device", device},
          {"arch", arch},        {"image_size", image_size}, {"batch_size", batch_size},
          {"threads", threads},  {"ranks_on_node", ranks_on_node}, {"candidates", names},
          {"tuned_conv_grads", tuned_conv_grads}};
}

std::string PrecisionDecision::describe(const std::vector<PrecisionCandidate>& candidates) const {
  std::string figures;
  for (size_t i = 0; i < candidates.size() && i < images_per_second.size(); ++i) {
    char text[96];
    std::snprintf(text, sizeof text, "%s%s %.1f", i ? ", " : "", candidates[i].name().c_str(), images_per_second[i]);
    figures += text;
  }
  char took[160];
  if (from_cache)
    std::snprintf(took, sizeof took, "; decided in %.1f s", seconds);
  else
    std::snprintf(took, sizeof took, "; %d rounds, the winner's steps within %.0f%% of each other, %s; decided in %.1f s",
                  rounds, 100 * (spread - 1), stable ? "settled (cached)" : "unsettled (not cached)", seconds);
  return chosen.name() + " (" + (from_cache ? "cached measurement" : "measured") + ": " + figures + " images/s" +
         took + ")";
}

nlohmann::json PrecisionDecision::to_json(const std::vector<PrecisionCandidate>& candidates) const {
  nlohmann::json figures = nlohmann::json::object();
  for (size_t i = 0; i < candidates.size() && i < images_per_second.size(); ++i)
    figures[candidates[i].name()] = images_per_second[i];
  return {{"requested", "auto"},
          {"chosen", chosen.name()},
          {"amp", precision_name(chosen.precision)},
          {"channels_last", chosen.channels_last},
          {"images_per_s", figures},
          {"images_per_s_covers", "forward, loss and backward of one batch, by rank 0 while every rank measured: "
                                  "the median of the timed steps after a first one; a candidate over 3x slower "
                                  "than the best in its first step, or 1.5x in a timed one, is dropped and reported "
                                  "from the steps it ran"},
          {"from_cache", from_cache},
          {"rounds", rounds},
          {"settled", stable},
          {"winner_step_spread", spread},
          {"settled_means", "the last 3 timed rounds had the same winner; else, after 8 rounds, both halves of the "
                            "rounds chose the same, or the candidates that won rounds were within 10% of each other. "
                            "An unsettled decision is used but not cached"},
          {"seconds", seconds}};
}

size_t fastest_candidate(const std::vector<double>& images_per_second, double margin) {
  size_t best = 0;
  for (size_t i = 1; i < images_per_second.size(); ++i)
    if (images_per_second[i] > images_per_second[best] * (1 + margin)) best = i;
  return best;
}

std::filesystem::path default_precision_cache() {
  if (const char* dir = std::getenv("HISTOTRAIN_CACHE"); dir && *dir) return std::filesystem::path(dir) / "precision.json";
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return std::filesystem::path(xdg) / "histotrain" / "precision.json";
  if (const char* home = std::getenv("HOME"); home && *home)
    return std::filesystem::path(home) / ".cache" / "histotrain" / "precision.json";
  return "/tmp/histotrain-cache/precision.json";
}

StepTimer model_step_timer(const std::string& arch, int64_t classes, int batch_size, int image_size,
                           const torch::Device& device, bool tuned_conv_grads) {
  struct State {
    torch::Tensor images, labels;
    std::map<std::string, ResNet> models;
  };
  auto state = std::make_shared<State>();
  const torch::Tensor rng = compat::cpu_rng_state();
  state->images = torch::randn({batch_size, 3, image_size, image_size}).to(device);
  state->labels = torch::randint(classes, {batch_size}, torch::kLong).to(device);
  compat::set_cpu_rng_state(rng);

  const auto step = [state, device](ResNet& model, const PrecisionCandidate& c) {
    const auto format = c.channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
    const auto start = std::chrono::steady_clock::now();
    {
      AutocastScope autocast(c.precision, device);
      const torch::Tensor logits = model->forward(state->images.contiguous(format));
      torch::nn::functional::cross_entropy(logits.to(torch::kFloat32), state->labels).backward();
    }
    // Reading one gradient back waits for the device, so the time covers the whole step.
    model->parameters().front().grad().sum().item<float>();
    for (auto& p : model->parameters()) p.mutable_grad() = torch::Tensor();
    return seconds_since(start);
  };
  return [state, step, arch, classes, device, tuned_conv_grads](const PrecisionCandidate& c) {
    auto found = state->models.find(c.name());
    if (found == state->models.end()) {
      const torch::Tensor rng = compat::cpu_rng_state();
      ResNet model(arch, classes);
      compat::set_cpu_rng_state(rng);
      model->to(device);
      if (c.channels_last) to_channels_last(*model);
      model->tune_conv_weight_grads(tuned_conv_grads && device.is_cpu() && c.precision == Precision::fp32 &&
                                    !c.channels_last);
      found = state->models.emplace(c.name(), model).first;
    }
    return step(found->second, c);
  };
}

PrecisionDecision choose_precision(const PrecisionProblem& problem, const StepTimer& timer,
                                   const std::filesystem::path& cache_file, Communicator* comm) {
  const auto start = std::chrono::steady_clock::now();
  const auto took = [&] { return seconds_since(start); };
  const bool main = !comm || comm->rank() == 0;
  const auto warn = [&](const std::string& line) {
    if (main) std::fprintf(stderr, "warning: %s\n", line.c_str());
  };
  std::optional<PrecisionDecision> cached;
  if (main) cached = cached_decision(read_cache(cache_file), problem);
  const auto index_of = [&](const PrecisionCandidate& c) {
    return static_cast<int64_t>(std::find(problem.candidates.begin(), problem.candidates.end(), c) -
                                problem.candidates.begin());
  };
  const int64_t cached_choice = from_rank0(cached ? index_of(cached->chosen) : -1, comm);
  if (cached_choice >= 0) {
    PrecisionDecision decision;
    if (main) decision = *cached;
    decision.chosen = problem.candidates[static_cast<size_t>(cached_choice)];
    decision.from_cache = true;
    decision.seconds = took();
    return decision;
  }
  PrecisionDecision decision;
  const Measurement m = measure(problem, timer);
  decision.images_per_second = m.images_per_second;
  decision.rounds = m.rounds;
  decision.stable = m.stable;
  decision.spread = m.spread;
  const int64_t choice = from_rank0(static_cast<int64_t>(fastest_candidate(decision.images_per_second)), comm);
  decision.chosen = problem.candidates[static_cast<size_t>(choice)];
  if (main && m.stable) store_decision(cache_file, problem, decision, warn);
  if (!m.stable)
    warn("--amp auto: the timings did not settle in " + std::to_string(m.rounds) +
         " rounds (the machine is busy?): this run uses the choice, and it is not cached");
  decision.seconds = took();
  return decision;
}

}  // namespace histotrain
