// Where a ResNet is cut into pipeline stages: at unit boundaries (stem, each residual block,
// head; see ResNetImpl::forward_units), balanced on measured forward+backward time or given.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "model/resnet.h"

namespace histotrain {

struct StagePlan {
  std::vector<int64_t> bounds;  // stage s runs units [bounds[s], bounds[s + 1])

  int stages() const { return static_cast<int>(bounds.size()) - 1; }
  int64_t first(int stage) const { return bounds.at(stage); }
  int64_t end(int stage) const { return bounds.at(stage + 1); }
  int stage_of(int64_t unit) const;
};

// The contiguous split of `unit_costs` into `stages` parts whose largest part is smallest.
StagePlan balance_stages(const std::vector<double>& unit_costs, int stages);

// --split "4,7": the first unit of every stage after the first (here 3 stages of 18 units:
// [0,4) [4,7) [7,18)). Throws UsageError for anything that is not such a list.
StagePlan parse_split(const std::string& text, int64_t units, int stages);

// Seconds each unit costs per training step: `micro_batches` forward + backward passes of
// `micro_batch` images of `image_size` px, plus its share of the optimizer step (which grows with
// its parameters: the late, wide blocks hold most of them). Best of 3 after a warm-up, on a fresh
// model of `arch`, so the one being trained keeps its BatchNorm statistics.
std::vector<double> measure_unit_costs(const std::string& arch, int64_t classes, int64_t micro_batch,
                                       int micro_batches, int64_t image_size, const torch::Device& device,
                                       torch::MemoryFormat format);

// One line per stage: units, parameter count, measured cost per step and its share.
std::string describe(const StagePlan& plan, ResNet& model, const std::vector<double>& unit_costs);

}  // namespace histotrain
