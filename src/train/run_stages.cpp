// Cutting a run's model into pipeline stages: see run_stages.h.
#include "train/run_stages.h"

#include <cstdio>

#include "pipeline/local_pipeline.h"
#include "pipeline/pipeline_schedule.h"
#include "pipeline/transfer_cost.h"

namespace histotrain {

namespace {

// Every rank's measurement, averaged: ranks that measured at the same time saw the same
// contention, and one plan must come out of them.
UnitCosts mean_over_ranks(UnitCosts costs, Communicator* comm) {
  if (!comm) return costs;
  std::vector<double>* parts[] = {&costs.forward, &costs.backward, &costs.update};
  for (std::vector<double>* part : parts) {
    auto sum = torch::tensor(*part, torch::kFloat64);
    comm->all_reduce_sum(sum);
    for (size_t u = 0; u < part->size(); ++u)
      (*part)[u] = sum[static_cast<int64_t>(u)].item<double>() / comm->world_size();
  }
  return costs;
}

// "estimated step 1040 ms, stages idle 9%, 14%, receiving 6 ms, 6 ms a step": to set against
// the measured step. `transfers`: measured between ranks (free in one process).
std::string describe_estimate(const std::optional<StepEstimate>& estimated, bool transfers) {
  if (!estimated) return "";
  const StepEstimate& estimate = *estimated;
  char text[80];
  std::snprintf(text, sizeof text, "\n  estimated step %.0f ms%s, stages idle", 1000 * estimate.seconds,
                transfers ? "" : " (transfers free)");
  std::string line = text;
  for (size_t s = 0; s < estimate.idle.size(); ++s) {
    std::snprintf(text, sizeof text, "%s %.0f%%", s ? "," : "", 100 * estimate.idle[s]);
    line += text;
  }
  if (!transfers) return line;
  line += ", receiving";
  for (size_t s = 0; s < estimate.receiving.size(); ++s) {
    std::snprintf(text, sizeof text, "%s %.1f ms", s ? "," : "", 1000 * estimate.receiving[s]);
    line += text;
  }
  return line + " a step (measured transfers)";
}

// The cut: as --stage-cut says, else the one whose schedule is shortest with the per-unit times
// measured by every rank together (so the cores are as busy as during training); rank 0's plan is
// everyone's.
struct PlannedCut {
  StagePlan plan;
  std::vector<double> costs;               // measured per unit and step (none with --stage-cut)
  std::optional<StepEstimate> estimate;    // the schedule's step, replayed with the measured costs
};

PlannedCut plan_stages(const TrainConfig& c, const RunWorld& world, const Trainee& t, int64_t classes) {
  Communicator* comm = world.dp->communicator();  // null for stages on devices in one process
  const int chunks = c.parallel.pipeline_stages * c.parallel.virtual_stages;
  PlannedCut cut;
  StagePlan& plan = cut.plan;
  if (!c.parallel.stage_cut.empty()) {
    plan = stage_plan_of(c.parallel.stage_cut, t.model->unit_count(), chunks);
    plan.ranks = c.parallel.pipeline_stages;
    return cut;
  }
  const int64_t micro_batch = c.optim.batch_size / c.parallel.micro_batches;
  UnitCosts measured = mean_over_ranks(
      measure_unit_costs(c.model.arch.name, classes, micro_batch, c.data.image_size, world.device, t.format), comm);
  if (comm) measured.transfer = measure_transfers(*comm, measured.output_elements, world.device);
  cut.costs = measured.per_step(c.parallel.micro_batches);
  auto bounds = torch::zeros({chunks + 1}, torch::kLong);
  if (world.is_main()) {
    plan = balance_stages(cut.costs, chunks);
    plan.ranks = c.parallel.pipeline_stages;
    plan = fit_to_schedule(plan, measured, c.parallel.micro_batches, c.parallel.pipeline_schedule);
    for (int s = 0; s <= chunks; ++s) bounds[s] = plan.bounds[static_cast<size_t>(s)];
  }
  if (comm) comm->broadcast_from_rank0({bounds});  // one plan, even if the ranks' sums differ in the last bit
  plan.bounds.assign(bounds.data_ptr<int64_t>(), bounds.data_ptr<int64_t>() + bounds.numel());
  plan.ranks = c.parallel.pipeline_stages;
  cut.estimate = estimate_step(plan, measured, c.parallel.micro_batches, c.parallel.pipeline_schedule);
  return cut;
}

}  // namespace

StepEngine cut_into_stages(const TrainConfig& c, const RunWorld& world, Trainee& t, int64_t classes) {
  const PlannedCut cut = plan_stages(c, world, t, classes);
  const StagePlan& plan = cut.plan;
  StepEngine engine;
  engine.pipeline_estimate = cut.estimate;
  Communicator* comm = world.dp->communicator();
  const ParallelConfig& p = c.parallel;
  world.log("pipeline: " + std::to_string(p.pipeline_stages) + " stages on " +
            (p.devices.empty() ? std::to_string(p.pipeline_stages) + " ranks" : "devices " + p.devices.text()) + ", " +
            std::to_string(p.micro_batches) + " micro-batch(es) of " +
            std::to_string(c.optim.batch_size / p.micro_batches) + " per batch (" +
            (p.pipeline_schedule == PipelineSchedule::fill_drain ? "GPipe" : "1F1B") +
            (p.virtual_stages > 1 ? ", interleaved: " + std::to_string(p.virtual_stages) + " chunks per stage)" : ")") +
            (p.stage_cut.empty() ? ", cut on measured time per step:" : ", split as given:") + "\n" +
            describe(plan, t.model, cut.costs) + describe_estimate(engine.pipeline_estimate, comm != nullptr));
  if (comm) {
    engine.pipeline = std::make_unique<PipelineStage>(t.model, plan, *comm, c.data.image_size, t.format,
                                                      p.pipeline_schedule);
  } else {
    place_stages(t.model, plan, open_devices(p.devices));
    engine.device_stages = plan;
    engine.device_schedule = p.pipeline_schedule;
  }
  return engine;
}


}  // namespace histotrain
