// Cutting a run's model into pipeline stages (--pipeline-stages > 1): over ranks, or over the
// devices of one process. Part of setting a run up (run_setup.cpp).
#pragma once
#include "train/run.h"

namespace histotrain {

// This rank's stage, or every stage placed on its device in this process, cut as --stage-cut
// says or where the measured per-unit times give the shortest schedule (rank 0's plan is
// everyone's: a collective). Placing moves the trainee's parameters in place, so its optimizer
// keeps them: build the trainee first.
StepEngine cut_into_stages(const TrainConfig& c, const RunWorld& world, Trainee& t, int64_t classes);

}  // namespace histotrain
