#include "train/resolution_schedule.h"

#include <algorithm>

namespace histotrain {

int ResolutionSchedule::side_at(double progress) const {
  if (!on()) return to;
  const double share = std::clamp(progress / std::max(until, 1e-9), 0.0, 1.0);
  if (share >= 1) return to;
  const int grown = from + static_cast<int>((to - from) * share);
  return std::min(to, from + (grown - from) / kSideStep * kSideStep);
}

torch::Tensor resized_batch(const torch::Tensor& images, int side, torch::MemoryFormat format) {
  if (images.size(2) == side && images.size(3) == side) return images;
  return torch::adaptive_avg_pool2d(images, {side, side}).contiguous(format);
}

}  // namespace histotrain
