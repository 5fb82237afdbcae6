// --time-budget: the learning rate by training time instead of by step, for time-to-accuracy
// runs. The warm-up keeps its length in steps (--warmup-epochs), cut short once a quarter of the
// budget is spent; the decay then runs from the warm-up's end to the end of the budget by the
// training time spent, so the rate reaches zero as the budget runs out, whatever the machine's
// speed. The clock is the one the project counts: training steps only, over a resume too.
#pragma once
#include <cstdint>

#include "core/schedule.h"

namespace histotrain {

struct TimeBudget {
  double seconds = 0;        // the budget; 0: none
  int64_t warmup_steps = 0;  // --warmup-epochs in steps
  // The share of the budget the warm-up may take at most: a short budget still decays.
  static constexpr double kMostWarmupShare = 0.25;

  bool on() const { return seconds > 0; }
  bool spent(double training_seconds) const { return on() && training_seconds >= seconds; }
  // The learning rate of step `step` begun after `training_seconds`. `warmup_end`: when the
  // warm-up ended, in training seconds (negative while it lasts); set here when it ends.
  double lr(const LrSchedule& schedule, int64_t step, double training_seconds, double& warmup_end) const;
};

}  // namespace histotrain
