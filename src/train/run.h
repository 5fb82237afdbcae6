// The state of one training run, shared by its setup (run_setup.cpp), its loop (trainer.cpp)
// and its reports (run_report.cpp). Internal to the trainer.
#pragma once
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/amp.h"
#include "core/evaluate.h"
#include "core/initial_weights.h"
#include "core/weight_average.h"
#include "data/dataset.h"
#include "data/groups.h"
#include "distributed/data_parallel.h"
#include "model/resnet.h"
#include "pipeline/pipeline_schedule.h"
#include "pipeline/pipeline_stage.h"
#include "pipeline/schedule_estimate.h"
#include "pipeline/stage_plan.h"
#include "train/config.h"
#include "train/graphed_step.h"
#include "train/optimizer.h"
#include "train/resolution_schedule.h"
#include "train/time_budget.h"
#include "util/clock.h"
#include "util/event_file.h"
#include "util/files.h"

namespace histotrain {


// The part of an epoch already trained, summed over ranks: what a checkpoint written in the
// middle of an epoch carries, so that the resumed epoch reports the same figures.
struct EpochProgress {
  int64_t steps = 0;
  double loss_sum = 0;  // sum of the steps' mean losses, over ranks
  double correct = 0;   // correctly classified training images, over ranks
  double seconds = 0;   // training time of those steps
  nlohmann::json to_json() const {
    return {{"steps", steps}, {"loss_sum", loss_sum}, {"correct", correct}, {"seconds", seconds}};
  }
  static EpochProgress from_json(const nlohmann::json& j) {
    EpochProgress p;
    p.steps = j.value("steps", int64_t{0});
    p.loss_sum = j.value("loss_sum", 0.0);
    p.correct = j.value("correct", 0.0);
    p.seconds = j.value("seconds", 0.0);
    return p;
  }
};

// The run's parts, each built by one function of run_setup.cpp that returns it, in the order
// set_up_run() calls them: the world, the data, the plan of steps, the model and what updates
// it, the step's engine. A part is what a function takes when it needs no more of the run.

// Who this process is among the ranks, the device it computes on, and the run folder (rank 0
// holds its lock while it writes there). Joined first: every later part may talk to the ranks.
struct RunWorld {
  std::unique_ptr<DataParallel> dp;  // a world of one for single-process training
  torch::Device device{torch::kCPU};
  fs::path out;
  std::unique_ptr<FolderLock> out_lock;

  bool is_main() const { return !dp || dp->is_main(); }
  int world_size() const { return dp ? dp->world_size() : 1; }
  int data_ranks() const { return dp ? dp->data_ranks() : 1; }  // ranks that each take their own images
  // Progress and reports come from rank 0 only.
  void log(const std::string& line) const {
    if (!is_main()) return;
    std::fprintf(stderr, "%s\n", line.c_str());
    std::fflush(stderr);
  }
};

// The tiles, their split, and how they enter the model.
struct RunData {
  TileDataset tiles;
  Split split;
  nlohmann::json split_audit;  // --split random: the leak the audit measured
  StainReference stain;        // --stain-normalize: what the tiles were normalised to, saved with the checkpoint
  Normalization normalization; // of the inputs (--normalize), saved likewise
  double input_mpp = 0;        // microns per model input pixel when the tiles say (data/dataset.h)

  int64_t class_count() const { return static_cast<int64_t>(tiles.classes.size()); }
};

// How many steps the run takes, with how many images, at what rate, at which side.
struct StepPlan {
  int64_t update_batch = 0;    // images of one optimizer step on one rank (--accumulate batches)
  int64_t global_batch = 0;    // ... on all the data-parallel ranks together
  int data_ranks = 1;
  double peak_lr = 0;          // config.optim.lr, scaled with the world size (lr_scaling)
  int64_t steps_per_epoch = 0;
  int64_t schedule_steps = 0;  // epochs x steps per epoch: what the LR schedule spans
  int64_t stop_step = 0;       // where training stops: schedule_steps, or earlier with --max-steps
  TimeBudget budget;           // --time-budget (off: the schedule is by step)
  ResolutionSchedule resolution;  // --progressive-from: the side each step trains at
};

// The model and what changes it: the optimizer, the precision and its loss scaler, the weight
// average, the loss.
struct Trainee {
  ResNet model{nullptr};
  std::unique_ptr<ScaledSgd> optimizer;
  Precision precision = Precision::fp32;
  std::unique_ptr<GradScaler> scaler;      // active for fp16 only
  std::unique_ptr<WeightAverage> average;  // --ema: the weights that are validated and saved
  torch::MemoryFormat format = torch::MemoryFormat::Contiguous;
  LossOptions loss;  // label smoothing, and the class weights of --balance loss (on the device)

  // The model that validation and checkpoints see: the weight average when there is one.
  ResNet& evaluated_model() { return average ? average->model() : model; }
};

// How a step runs beyond one forward and backward pass: pipeline stages over ranks or devices,
// or replayed as a CUDA graph.
struct StepEngine {
  std::unique_ptr<PipelineStage> pipeline;  // --pipeline-stages > 1 over ranks: this rank's stage
  std::optional<StagePlan> device_stages;   // --pipeline-stages > 1 over --devices, in this process
  PipelineSchedule device_schedule = PipelineSchedule::fill_drain;  // their order (--pipeline-schedule)
  std::optional<StepEstimate> pipeline_estimate;  // from measured unit costs (none with --stage-cut)
  bool use_graph = false;                   // replay the step as a CUDA graph (--cuda-graph)
  std::unique_ptr<GraphedTrainStep> graph;  // captured at the first step
  double graph_capture_seconds = 0;

  bool pipelined() const { return pipeline || device_stages; }
};

// A run: its configuration (with --amp auto decided), its parts, and what its reports keep.
struct Run {
  TrainConfig config;
  RunWorld world;
  RunData data;
  StepPlan plan;
  Trainee trainee;
  StepEngine engine;
  Clock::time_point started = Clock::now();  // the command's start, for its wall time
  nlohmann::json precision_choice;  // --amp auto: the candidates' figures and the choice (null otherwise)
  nlohmann::json init_report;       // --init: what was loaded (core/initial_weights.h); null otherwise
  std::unique_ptr<EventFileWriter> events;  // --tensorboard, rank 0: each epoch's record as scalars
  NamedTensors resumed_reducer_state;  // --resume: the gradient reducer's (PowerSGD), for attach
  int resumed_world = 0;               // --resume: the world size the checkpoint was saved with

  bool is_main() const { return world.is_main(); }
  int world_size() const { return world.world_size(); }
  bool pipelined() const { return engine.pipelined(); }
  void log(const std::string& line) const { world.log(line); }
};

// What changes as a run goes: where it stands, its results so far, and what its steps measured.
// restore() sets where a resumed run starts.
struct RunProgress {
  int64_t start_epoch = 0;         // the epoch this process starts in
  EpochProgress resumed_progress;  // a resume in the middle of start_epoch: the steps already taken
  int64_t step = 0;                // optimizer steps taken by the whole run
  int64_t epochs_done = 0;         // whole epochs (an epoch cut by --max-steps counts)
  double train_seconds = 0;        // training time of the epochs done, before a resume included
  double last_lr = 0;              // the rate of the last step taken
  // --time-budget: rank 0's training time when the last step ended (every rank holds the same
  // figure), whether it spent the budget, and when the warm-up ended (-1: not yet).
  double budget_clock = 0;
  bool budget_spent = false;
  double warmup_end_seconds = -1;
  int side = 0;                    // the image side the last step trained at (progressive resizing)
  double best_acc = 0;
  double time_to_target = -1;
  nlohmann::json last_val;         // last validation report (kept across a resume)
  // The weights model.safetensors holds (train --keep): the epoch and step they are from, and
  // their validation report; kept_epoch -1 before the first checkpoint.
  int64_t kept_epoch = -1, kept_step = 0;
  nlohmann::json kept_val;
  int stopped_by = 0;              // the signal (SIGINT, SIGTERM) the run stopped for, once it has
  double pipeline_seconds = 0, pipeline_waiting = 0;  // this rank's pipeline steps, and its time blocked in receives
  int64_t pipeline_steps = 0;                          // how many steps those are
  // The most memory a step held beyond what was held before it, sampled between its passes
  // (activations kept for backward, gradients), by the allocator's count; -1: unknown (GPU
  // memory is not counted).
  double step_held_peak_bytes = -1;
};

// One epoch's figures, over all ranks; `progress` is what a checkpoint taken now would carry.
struct EpochStats {
  double loss = 0, accuracy = 0, seconds = 0;
  int64_t images = 0;
  int64_t skipped_steps = 0;  // fp16 steps skipped for inf/NaN gradients
  EpochProgress progress;     // all the steps of the epoch taken so far, with their sums
  bool complete = false;      // false: stopped inside the epoch (--max-steps, a signal)
  bool stopped = false;       // every rank agreed to stop for a signal
  bool budget_spent = false;  // --time-budget: the budget ran out in this epoch
};

// The dataset a training config names (root, tile size, groups CSV, cache, decode threads).
// `find_groups`: without a groups CSV, near-copy groups are found from the pixels (cached).
DataOptions training_data_options(const TrainConfig& config, bool quiet, bool find_groups);

// Joins the other ranks, loads and splits the data, plans the steps, builds the model and
// optimizer, and cuts the pipeline stages when asked: each part by a function that returns it.
Run set_up_run(const TrainConfig& config);
// Continues from run.config.job.resume: model, optimizer, scaler, and where `progress` stands;
// any world size.
void restore(Run& run, RunProgress& progress);

// Reports (run_report.cpp): the start line, each epoch's record and line, checkpoint metadata,
// the pipeline and data-parallel step reports, the summary.
std::string start_line(const TrainConfig& c, const RunWorld& world, const StepPlan& plan, Precision precision);
// "epoch 3/10", or "epoch 3" when a time budget decides the length.
std::string epoch_label(const TrainConfig& c, const StepPlan& plan, int64_t epoch_number);
// How a --time-budget run spent its budget, and the whole command's time (since `started`) beside it.
std::string budget_line(const StepPlan& plan, const RunProgress& progress, Clock::time_point started);
// What the convolution weight-gradient tuning chose (--conv-grad auto), for the log and the summary.
std::string conv_grad_line();
nlohmann::json conv_grad_json(const ResNet& model);
nlohmann::json epoch_record(const GradScaler& scaler, const RunProgress& progress, const EpochStats& stats);
std::string epoch_line(const TrainConfig& c, const StepPlan& plan, const RunProgress& progress,
                       const EpochStats& stats);
// Adds a validation's figures to the epoch's record and line; returns the report that
// checkpoints and the summary keep (with the bootstrap's intervals on the main rank only).
nlohmann::json report_validation(const JobConfig& job, const RunData& data, bool main_rank, const EvalResult& val,
                                 nlohmann::json& record, std::string& line);
// checkpoint.json's and summary.json's "weights": which weights model.safetensors holds (--keep).
nlohmann::json kept_weights_json(KeptWeights keep, const RunProgress& progress);
// `epoch_progress`: the part of the next epoch already trained, for a checkpoint inside an epoch.
nlohmann::json checkpoint_meta(const Run& run, const RunProgress& progress, int64_t epochs_done,
                               double train_seconds, const EpochProgress& epoch_progress = {});
// The pipeline's per-stage report (null without stages). A collective: every rank calls it.
nlohmann::json pipeline_json(const ParallelConfig& c, const StepEngine& engine, const ResNet& model,
                             DataParallel& dp, const RunProgress& progress);
nlohmann::json step_times_json(const DataParallel& dp);
// Every data-parallel rank's own step times (backward, after backward, compression), so that a
// rank that waits for a slower one can be told from one that is slow; null without a gradient
// reducer. A collective: every rank calls it.
nlohmann::json rank_step_times_json(DataParallel& dp);
// summary.json: what the run did, how fast, how well, on what; `pipeline_report` from pipeline_json,
// `rank_step_times` from rank_step_times_json.
nlohmann::json run_summary(const Run& run, const RunProgress& progress, const nlohmann::json& pipeline_report,
                           const nlohmann::json& rank_step_times);

}  // namespace histotrain
