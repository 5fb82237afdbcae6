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
#include "core/weight_average.h"
#include "data/dataset.h"
#include "data/groups.h"
#include "dist/data_parallel.h"
#include "model/resnet.h"
#include "pipeline/pipeline_schedule.h"
#include "pipeline/pipeline_stage.h"
#include "pipeline/schedule_estimate.h"
#include "pipeline/stage_plan.h"
#include "train/config.h"
#include "train/graphed_step.h"
#include "util/clock.h"
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

// Everything a run needs, set up once.
struct Run {
  TrainConfig config;
  std::unique_ptr<FolderLock> out_lock;  // rank 0 holds the run folder while it writes there
  std::unique_ptr<DataParallel> dp;  // world of one for single-process training
  std::unique_ptr<PipelineStage> pipeline;  // --pipeline-stages > 1 over ranks: this rank's stage
  std::optional<StagePlan> device_stages;   // --pipeline-stages > 1 over --devices, in this process
  PipelineSchedule device_schedule = PipelineSchedule::fill_drain;  // their order (--pipeline-schedule)
  std::optional<StepEstimate> pipeline_estimate;  // from measured unit costs (none with --split)
  fs::path out;
  torch::Device device{torch::kCPU};
  TileDataset data;
  Split split;
  ResNet model{nullptr};
  std::unique_ptr<torch::optim::SGD> optimizer;
  Precision precision = Precision::fp32;
  std::unique_ptr<GradScaler> scaler;  // active for fp16 only
  std::unique_ptr<WeightAverage> average;   // --ema: the weights that are validated and saved
  bool use_graph = false;                   // replay the step as a CUDA graph (--cuda-graph)
  std::unique_ptr<GraphedTrainStep> graph;  // captured at the first step
  double graph_capture_seconds = 0;
  torch::MemoryFormat format = torch::MemoryFormat::Contiguous;
  double peak_lr = 0;           // config.lr, scaled with the world size (lr_scaling)
  int64_t steps_per_epoch = 0;
  int64_t schedule_steps = 0;  // epochs x steps per epoch: what the LR schedule spans
  int64_t stop_step = 0;       // where training stops: schedule_steps, or earlier with --max-steps
  int64_t start_epoch = 0, step = 0;
  EpochProgress resumed_progress;  // a resume in the middle of epoch start_epoch: the steps already taken
  int stopped_by = 0;              // the signal (SIGINT, SIGTERM) the run stopped for, once it has
  double previous_seconds = 0;  // training time before a resume
  double best_acc = 0;
  double time_to_target = -1;
  double pipeline_seconds = 0, pipeline_waiting = 0;  // this rank's pipeline steps, and its time blocked in receives
  int64_t pipeline_steps = 0;                          // how many steps those are
  // The most memory a step held beyond what was held before it, sampled between its passes
  // (activations kept for backward, gradients), by the allocator's count; -1: unknown (GPU
  // memory is not counted).
  double step_held_peak_bytes = -1;
  nlohmann::json split_audit;  // --split random: the leak the audit measured
  nlohmann::json precision_choice;  // --amp auto: the candidates' figures and the choice (null otherwise)
  nlohmann::json last_val;  // last validation report (kept across a resume)

  bool is_main() const { return !dp || dp->is_main(); }
  int world_size() const { return dp ? dp->world_size() : 1; }
  int data_ranks() const { return dp ? dp->data_ranks() : 1; }  // ranks that each take their own images
  int64_t global_batch() const { return int64_t{config.batch_size} * data_ranks(); }
  // The model that validation and checkpoints see: the weight average when there is one.
  ResNet& evaluated_model() { return average ? average->model() : model; }
  // Progress and reports come from rank 0 only.
  void log(const std::string& line) const {
    if (!is_main()) return;
    std::fprintf(stderr, "%s\n", line.c_str());
    std::fflush(stderr);
  }
};

// Joins the other ranks, loads and splits the data, plans the steps, builds the model and
// optimizer, and cuts the pipeline stages when asked.
void prepare(Run& run);
// Continues from run.config.resume: model, optimizer, scaler and step, any world size.
void restore(Run& run);

// Reports: the start line, checkpoint metadata, the pipeline and data-parallel step reports.
std::string start_line(const Run& run);
// `progress`: the part of the next epoch already trained, for a checkpoint inside an epoch.
nlohmann::json checkpoint_meta(const Run& run, int64_t epochs_done, double train_seconds,
                               const EpochProgress& progress = {});
nlohmann::json pipeline_json(Run& run);  // a collective: every rank calls it
nlohmann::json step_times_json(const DataParallel& dp);

}  // namespace histotrain
