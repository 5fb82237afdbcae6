#include "train/time_budget.h"

#include <algorithm>

namespace histotrain {

double TimeBudget::lr(const LrSchedule& schedule, int64_t step, double training_seconds, double& warmup_end) const {
  const bool warming = warmup_end < 0 && step < warmup_steps && training_seconds < kMostWarmupShare * seconds;
  if (warming) return schedule.at(step);
  if (warmup_end < 0) warmup_end = training_seconds;
  return schedule.decayed((training_seconds - warmup_end) / std::max(1e-9, seconds - warmup_end));
}

}  // namespace histotrain
