// Where a ResNet is cut into pipeline stages: at unit boundaries (stem, each residual block,
// head; see ResNetImpl::forward_units), balanced on measured time (see also schedule_estimate.h) or given.
#pragma once
#include <torch/torch.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/resnet.h"

namespace histotrain {

// The network cut into consecutive chunks; chunk c runs on stage (rank) c mod stages(). With one
// chunk per stage (the default) chunk s is stage s. With V chunks per stage (--virtual-stages V,
// the interleaved schedule) stage s runs chunks s, s + K, s + 2K, ...: a micro-batch loops
// through the ranks V times, and the fill-drain bubble shrinks about V-fold.
struct StagePlan {
  std::vector<int64_t> bounds;  // chunk c runs units [bounds[c], bounds[c + 1])
  int ranks = 0;                // stages (0: one per chunk)

  int chunks() const { return static_cast<int>(bounds.size()) - 1; }
  int stages() const { return ranks > 0 ? ranks : chunks(); }
  int virtual_stages() const { return chunks() / stages(); }
  int64_t first(int chunk) const { return bounds.at(chunk); }
  int64_t end(int chunk) const { return bounds.at(chunk + 1); }
  int stage_of_chunk(int chunk) const { return chunk % stages(); }
  std::vector<int> chunks_of(int stage) const;  // ascending
  int stage_of(int64_t unit) const;
};

// Measured seconds per unit: the forward and the backward pass of one micro-batch, and the
// optimizer's update of the unit's parameters (once per step; it grows with the parameters: the
// late, wide blocks hold most of them).
struct UnitCosts {
  std::vector<double> forward, backward, update;
  std::vector<int64_t> output_elements;  // of a micro-batch's output: what a cut after the unit sends on
  // One-way seconds to send the unit's output (and its gradient back) between two stages' ranks
  // (transfer_cost.h); empty: taken as free (stages in one process).
  std::vector<double> transfer;
  // Seconds per training step of `micro_batches` micro-batches, unit by unit.
  std::vector<double> per_step(int micro_batches) const;
};

// The contiguous split of `unit_costs` into `stages` parts whose largest part is smallest.
StagePlan balance_stages(const std::vector<double>& unit_costs, int stages);

// --stage-cut "4,7": the first unit of every stage after the first (here 3 stages of 18 units:
// [0,4) [4,7) [7,18)), increasing; empty: cut where the measured costs say. Parsed once where
// the text enters (util/text_form.h); whether it fits a model and a stage count, by stage_plan_of.
struct StageCut {
  std::vector<int64_t> starts;

  static std::optional<StageCut> parse(std::string_view text);  // "" is the empty cut
  std::string text() const;
  static const char* example() { return "4,7"; }
  bool empty() const { return starts.empty(); }
};

// The plan `cut` gives a model of `units` units; throws UsageError unless the cut's units lie
// between 1 and units - 1 and it makes `stages` parts.
StagePlan stage_plan_of(const StageCut& cut, int64_t units, int stages);
// The same from text: a UsageError for anything that is not such a list.
StagePlan parse_split(const std::string& text, int64_t units, int stages);

// What each unit costs with micro-batches of `micro_batch` images of `image_size` px. Best of 3
// after a warm-up, on a fresh model of `arch`, so the one being trained keeps its BatchNorm
// statistics.
UnitCosts measure_unit_costs(const std::string& arch, int64_t classes, int64_t micro_batch, int64_t image_size,
                             const torch::Device& device, torch::MemoryFormat format);

// One line per chunk: its stage (when stages hold several chunks), units, parameter count,
// measured cost per step and its share.
std::string describe(const StagePlan& plan, ResNet& model, const std::vector<double>& unit_costs);

}  // namespace histotrain
