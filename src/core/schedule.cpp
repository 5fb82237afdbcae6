#include "core/schedule.h"

#include <algorithm>
#include <cmath>

namespace histotrain {

LrSchedule::LrSchedule(ScheduleShape shape, double peak_lr, int64_t warmup_steps, int64_t total_steps)
    : shape_(shape), peak_(peak_lr), warmup_(std::max<int64_t>(0, warmup_steps)),
      total_(std::max<int64_t>(1, total_steps)) {
  warmup_ = std::min(warmup_, total_ - 1);
}

double LrSchedule::at(int64_t step) const {
  if (step < warmup_) return peak_ * (0.1 + 0.9 * static_cast<double>(step) / warmup_);
  return decayed(static_cast<double>(step - warmup_) / std::max<int64_t>(1, total_ - warmup_));
}

double LrSchedule::decayed(double t) const {
  t = std::clamp(t, 0.0, 1.0);
  if (shape_ == ScheduleShape::cosine) return peak_ * 0.5 * (1 + std::cos(3.14159265358979323846 * t));
  return peak_ * (1 - t);
}

}  // namespace histotrain
