// A run's checkpoints: which weights model.safetensors keeps (--keep), and the writing of a
// checkpoint at a validation or between validations.
#include "train/run_checkpoints.h"

#include "core/checkpoint.h"
#include "pipeline/local_pipeline.h"

namespace histotrain {

bool keep_weights(KeptWeights keep, RunProgress& p, int64_t epochs_done, const nlohmann::json* val,
                  double previous_best) {
  const bool best = keep == KeptWeights::best;
  const bool better = val && (p.kept_val.is_null() || (*val)["accuracy"].get<double>() > previous_best);
  if (best && p.kept_epoch >= 0 && !better) return false;
  p.kept_epoch = epochs_done;
  p.kept_step = p.step;
  if (val || !best) p.kept_val = val ? *val : p.last_val;
  return true;
}

void write_checkpoint(Run& run, const RunProgress& p, int64_t epochs_done, double train_seconds,
                      const EpochProgress& epoch_progress, bool new_weights) {
  const NamedTensors reducer_state = run.world.dp->compression_state();  // a collective: before rank 0 goes on alone
  if (!run.is_main()) return;
  save_checkpoint(run.world.out, run.trainee.model, *run.trainee.optimizer, *run.trainee.scaler,
                  checkpoint_meta(run, p, epochs_done, train_seconds, epoch_progress),
                  run.trainee.average ? &run.trainee.average->model() : nullptr, reducer_state, new_weights);
}

void save_between_validations(Run& run, RunProgress& p, int64_t epochs_done, const EpochProgress& epoch_progress) {
  if (run.engine.pipeline) run.engine.pipeline->gather(*run.trainee.optimizer);
  const bool new_weights = keep_weights(run.config.job.keep, p, epochs_done, nullptr, p.best_acc);
  write_checkpoint(run, p, epochs_done, p.train_seconds + epoch_progress.seconds, epoch_progress, new_weights);
}

bool checkpoint_due(const StepPlan& plan, int64_t every, int64_t steps_into_epoch) {
  return every > 0 && steps_into_epoch < plan.steps_per_epoch && steps_into_epoch % every == 0;
}

}  // namespace histotrain
