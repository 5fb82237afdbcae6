#include "pipeline/stage_plan.h"

#include <chrono>
#include <cstdio>
#include <limits>
#include <sstream>

#include "core/amp.h"
#include "core/sgd_update.h"
#include "util/clock.h"
#include "util/errors.h"

namespace histotrain {

std::vector<int> StagePlan::chunks_of(int stage) const {
  std::vector<int> mine;
  for (int c = stage; c < chunks(); c += stages()) mine.push_back(c);
  return mine;
}

int StagePlan::stage_of(int64_t unit) const {
  for (int c = 0; c < chunks(); ++c)
    if (unit >= first(c) && unit < end(c)) return stage_of_chunk(c);
  throw Error("unit " + std::to_string(unit) + " belongs to no pipeline stage");
}

StagePlan balance_stages(const std::vector<double>& costs, int stages) {
  const int64_t n = static_cast<int64_t>(costs.size());
  if (stages < 1 || stages > n)
    throw UsageError("--pipeline-stages (times --virtual-stages) must be between 1 and " + std::to_string(n) +
                     " (the units of this ResNet)");
  std::vector<double> prefix(n + 1, 0);
  for (int64_t i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + costs[i];
  // best[k][i]: the smallest largest-stage cost of the first i units in k stages.
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<std::vector<double>> best(stages + 1, std::vector<double>(n + 1, inf));
  std::vector<std::vector<int64_t>> cut(stages + 1, std::vector<int64_t>(n + 1, 0));
  best[0][0] = 0;
  for (int k = 1; k <= stages; ++k)
    for (int64_t i = k; i <= n; ++i)
      for (int64_t j = k - 1; j < i; ++j) {
        const double cost = std::max(best[k - 1][j], prefix[i] - prefix[j]);
        if (cost < best[k][i]) {
          best[k][i] = cost;
          cut[k][i] = j;
        }
      }
  StagePlan plan;
  plan.bounds.assign(stages + 1, 0);
  plan.bounds[stages] = n;
  for (int k = stages; k > 0; --k) plan.bounds[k - 1] = cut[k][plan.bounds[k]];
  return plan;
}

std::optional<StageCut> StageCut::parse(std::string_view text) {
  StageCut cut;
  if (text.empty()) return cut;
  for (size_t start = 0;;) {
    const size_t comma = text.find(',', start);
    const std::string_view item = text.substr(start, comma == std::string_view::npos ? comma : comma - start);
    if (item.empty() || item.size() > 6 || item.find_first_not_of("0123456789") != std::string_view::npos)
      return std::nullopt;
    const int64_t unit = std::stoll(std::string(item));
    if (unit < 1 || (!cut.starts.empty() && unit <= cut.starts.back())) return std::nullopt;
    cut.starts.push_back(unit);
    if (comma == std::string_view::npos) return cut;
    start = comma + 1;
  }
}

std::string StageCut::text() const {
  std::string text;
  for (const int64_t unit : starts) text += (text.empty() ? "" : ",") + std::to_string(unit);
  return text;
}

StagePlan stage_plan_of(const StageCut& cut, int64_t units, int stages) {
  StagePlan plan;
  plan.bounds.push_back(0);
  for (const int64_t unit : cut.starts) {
    if (unit >= units)
      throw UsageError("--stage-cut '" + cut.text() + "': expected increasing unit indices between 1 and " +
                       std::to_string(units - 1) + ", separated by commas");
    plan.bounds.push_back(unit);
  }
  plan.bounds.push_back(units);
  if (plan.stages() != stages)
    throw UsageError("--stage-cut '" + cut.text() + "' gives " + std::to_string(plan.stages()) +
                     " parts; --pipeline-stages (times --virtual-stages) asks for " + std::to_string(stages));
  return plan;
}

StagePlan parse_split(const std::string& text, int64_t units, int stages) {
  const auto cut = StageCut::parse(text);
  if (!cut || cut->empty())
    throw UsageError("--stage-cut '" + text + "': expected increasing unit indices between 1 and " +
                     std::to_string(units - 1) + ", separated by commas");
  return stage_plan_of(*cut, units, stages);
}

std::vector<double> UnitCosts::per_step(int micro_batches) const {
  std::vector<double> step;
  for (size_t u = 0; u < forward.size(); ++u) step.push_back(micro_batches * (forward[u] + backward[u]) + update[u]);
  return step;
}

UnitCosts measure_unit_costs(const std::string& arch, int64_t classes, int64_t batch, int64_t image_size,
                             const torch::Device& device, torch::MemoryFormat format) {
  const auto finished = [&]() {
    if (device.is_cuda()) torch::cuda::synchronize();
    return Clock::now();
  };
  ResNet probe(arch, classes);
  probe->to(device);
  if (format == torch::MemoryFormat::ChannelsLast) to_channels_last(*probe);
  probe->train();
  torch::Tensor x = torch::randn({batch, 3, image_size, image_size}, torch::TensorOptions().device(device))
                        .contiguous(format);
  UnitCosts costs;
  for (int64_t u = 0; u < probe->unit_count(); ++u) {
    const double inf = std::numeric_limits<double>::infinity();
    double forward = inf, backward = inf, update = inf;
    torch::Tensor y;
    // The trainer's update rule (SGD, Nesterov momentum, weight decay) with the trainer's kernels.
    torch::optim::SGD sgd(probe->unit_parameters(u),
                          torch::optim::SGDOptions(0.01).momentum(0.9).nesterov(true).weight_decay(5e-4));
    for (int run = 0; run < 4; ++run) {
      // As in training: the first unit's input is the batch of images, which needs no gradient
      // (at 128 px that gradient costs about as much as the stem's forward pass); every later
      // unit's input gradient goes back to the unit before.
      const torch::Tensor input = u == 0 ? x : x.detach().requires_grad_(true);
      const auto start = Clock::now();
      y = probe->forward_units(input, u, u + 1);
      const auto forward_done = finished();
      y.sum().backward();
      const auto backward_done = finished();
      fast_sgd_step(sgd, device);
      const auto update_done = finished();
      if (run > 0) {
        forward = std::min(forward, seconds_between(start, forward_done));
        backward = std::min(backward, seconds_between(forward_done, backward_done));
        update = std::min(update, seconds_between(backward_done, update_done));
      }
    }
    costs.forward.push_back(forward);
    costs.backward.push_back(backward);
    costs.update.push_back(update);
    costs.output_elements.push_back(y.numel());
    x = y.detach();
  }
  return costs;
}

std::string describe(const StagePlan& plan, ResNet& model, const std::vector<double>& costs) {
  double total = 0;
  for (double c : costs) total += c;
  std::string text;
  for (int c = 0; c < plan.chunks(); ++c) {
    int64_t params = 0;
    double cost = 0;
    for (int64_t u = plan.first(c); u < plan.end(c); ++u) {
      for (const auto& p : model->unit_parameters(u)) params += p.numel();
      if (!costs.empty()) cost += costs[static_cast<size_t>(u)];
    }
    char line[200];
    if (plan.virtual_stages() > 1)
      std::snprintf(line, sizeof line, "  stage %d, chunk %d: units %s .. %s, %.2f M parameters", plan.stage_of_chunk(c),
                    c, model->unit_name(plan.first(c)).c_str(), model->unit_name(plan.end(c) - 1).c_str(), params / 1e6);
    else
      std::snprintf(line, sizeof line, "  stage %d: units %s .. %s, %.2f M parameters", c,
                    model->unit_name(plan.first(c)).c_str(), model->unit_name(plan.end(c) - 1).c_str(), params / 1e6);
    text += line;
    if (!costs.empty()) {
      std::snprintf(line, sizeof line, ", %.1f ms per step (%.0f%%)", 1000 * cost, 100 * cost / total);
      text += line;
    }
    if (c + 1 < plan.chunks()) text += "\n";
  }
  return text;
}

}  // namespace histotrain
