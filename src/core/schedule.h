// Learning rate per optimizer step: linear warm-up from lr/10 to the peak, then a one-cycle
// (linear) or cosine decay to zero at the last step.
#pragma once
#include <cstdint>
#include <string>

namespace histotrain {

class LrSchedule {
 public:
  // kind: "onecycle" or "cosine"; throws UsageError otherwise.
  LrSchedule(std::string kind, double peak_lr, int64_t warmup_steps, int64_t total_steps);
  double at(int64_t step) const;

 private:
  std::string kind_;
  double peak_;
  int64_t warmup_, total_;
};

}  // namespace histotrain
