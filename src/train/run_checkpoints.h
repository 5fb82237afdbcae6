// A run's checkpoints: which weights model.safetensors keeps (--keep), and the writing of a
// checkpoint at a validation or between validations.
#pragma once
#include <cstdint>

#include <nlohmann/json.hpp>

#include "train/run.h"

namespace histotrain {

// Whether a checkpoint's weights become those model.safetensors keeps (--keep): always for
// last; for best, the first ones and then those of a validation better than any before.
// `val`: the checkpoint's validation report, if it has one; `previous_best` the best accuracy
// before it. Updates what is kept.
bool keep_weights(KeptWeights keep, RunProgress& p, int64_t epochs_done, const nlohmann::json* val,
                  double previous_best);

// The checkpoint after `epochs_done` whole epochs and `epoch_progress` of the next one; rank 0
// writes it (pipeline stages must have gathered the model). `new_weights`: model.safetensors
// takes the current weights (else it keeps the ones it holds). A collective.
void write_checkpoint(Run& run, const RunProgress& p, int64_t epochs_done, double train_seconds,
                      const EpochProgress& epoch_progress, bool new_weights);

// A checkpoint between validations (--checkpoint-steps, a signal), `epoch_progress` into epoch
// `epochs_done`; a collective, as pipeline stages first gather the whole model.
void save_between_validations(Run& run, RunProgress& p, int64_t epochs_done, const EpochProgress& epoch_progress);

// Whether --checkpoint-steps `every` asks for a checkpoint after `steps_into_epoch` steps of an epoch.
bool checkpoint_due(const StepPlan& plan, int64_t every, int64_t steps_into_epoch);

}  // namespace histotrain
