#include "pipeline/local_pipeline.h"

#include <chrono>
#include <sstream>

#include "core/loss.h"
#include "core/runtime.h"
#include "util/clock.h"
#include "util/errors.h"

namespace histotrain {

std::vector<torch::Device> open_devices(const DeviceList& list) {
  if (list.names.size() < 2) throw UsageError("--devices needs two or more devices, e.g. cuda:0,cuda:1 or cpu,cpu");
  std::vector<torch::Device> devices;
  for (const DeviceName& name : list.names) devices.push_back(open_device(name));
  return devices;
}

std::vector<torch::Device> parse_devices(const std::string& list) {
  const auto parsed = DeviceList::parse(list);
  if (!parsed) throw UsageError("--devices '" + list + "': expected devices such as cuda:0,cuda:1 or cpu,cpu");
  return open_devices(*parsed);
}

void place_stages(ResNet& model, const StagePlan& plan, const std::vector<torch::Device>& devices) {
  if (static_cast<int>(devices.size()) != plan.stages())
    throw UsageError("--devices names " + std::to_string(devices.size()) + " devices for " +
                     std::to_string(plan.stages()) + " pipeline stages");
  for (int s = 0; s < plan.stages(); ++s)
    for (int64_t u = plan.first(s); u < plan.end(s); ++u)
      for (const auto& module : model->unit_modules(u)) module->to(devices[static_cast<size_t>(s)]);
}

PipelineStepResult local_pipeline_step(ResNet& model, const StagePlan& plan, PipelineSchedule schedule,
                                       const Batch& batch, int micro_batches,
                                       const LossOptions& loss_options,
                                       Precision precision, GradScaler& scaler) {
  const auto start = std::chrono::steady_clock::now();
  const int64_t n = batch.images.size(0);
  if (micro_batches < 1 || n % micro_batches != 0)
    throw UsageError("--micro-batches " + std::to_string(micro_batches) + " must divide the batch of " +
                     std::to_string(n));
  const int64_t mb = n / micro_batches;
  std::vector<torch::Tensor> losses(micro_batches);
  torch::Tensor loss_sum, correct;
  const auto forward = [&](int m) {  // through every stage
    torch::Tensor logits;
    {
      AutocastScope autocast(precision, batch.images.device());
      logits = model->forward(batch.images.narrow(0, m * mb, mb)).to(torch::kFloat32);
    }
    const torch::Tensor labels = batch.labels.narrow(0, m * mb, mb).to(logits.device());
    const LossAndCorrect loss = classification_loss(logits, labels, loss_options);
    losses[m] = loss.loss;
    // Kept on the device and read once, at the end: a read here would make the host wait for
    // every stage and stop the devices from working at the same time.
    loss_sum = loss_sum.defined() ? loss_sum + losses[m].detach() * static_cast<double>(mb)
                                  : losses[m].detach() * static_cast<double>(mb);
    correct = correct.defined() ? correct + loss.correct : loss.correct;
  };
  const auto backward = [&](int m) {
    scaler.scale_loss(losses[m] / micro_batches).backward();
    losses[m] = torch::Tensor();
  };
  for (const PipelineOp& op : stage_ops(plan, 0, micro_batches, schedule)) {
    if (op.forward)
      forward(op.micro_batch);
    else
      backward(op.micro_batch);
  }
  PipelineStepResult result;
  result.loss_sum = loss_sum.item<double>();
  result.correct = correct.item<int64_t>();
  result.seconds = seconds_since(start);
  return result;
}

}  // namespace histotrain
