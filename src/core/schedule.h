// Learning rate per optimizer step: linear warm-up from lr/10 to the peak, then a one-cycle
// (linear) or cosine decay to zero at the last step.
#pragma once
#include <cstdint>
#include <string>

#include "util/enum_names.h"

namespace histotrain {

// What follows the warm-up: a linear (one-cycle) or a cosine decay to zero.
enum class ScheduleShape { onecycle, cosine };
template <>
struct Spellings<ScheduleShape> {
  static constexpr std::pair<ScheduleShape, const char*> all[] = {{ScheduleShape::onecycle, "onecycle"},
                                                                  {ScheduleShape::cosine, "cosine"}};
};

class LrSchedule {
 public:
  LrSchedule(ScheduleShape shape, double peak_lr, int64_t warmup_steps, int64_t total_steps);
  double at(int64_t step) const;
  // The decay alone, `t` of the way from the warm-up's end (0) to the schedule's end (1).
  double decayed(double t) const;

 private:
  ScheduleShape shape_;
  double peak_;
  int64_t warmup_, total_;
};

}  // namespace histotrain
