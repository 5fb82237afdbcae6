#include "pipeline/pipeline_stage.h"

#include <algorithm>
#include <chrono>
#include <map>

#include "core/loss.h"
#include "util/allocator.h"
#include "util/clock.h"
#include "util/errors.h"

namespace histotrain {

namespace {
}  // namespace

PipelineStage::PipelineStage(ResNet& model, StagePlan plan, Communicator& comm, int64_t image_size,
                             torch::MemoryFormat format, PipelineSchedule schedule)
    : model_(model),
      plan_(std::move(plan)),
      comm_(comm),
      stage_(comm.rank()),
      image_size_(image_size),
      format_(format),
      schedule_(schedule) {
  if (plan_.stages() != comm.world_size())
    throw UsageError(std::to_string(plan_.stages()) + " pipeline stages need as many ranks; this job has " +
                     std::to_string(comm.world_size()));
}

// The shape of chunk c's input for a micro-batch: what the units before it make of an image.
std::vector<int64_t> PipelineStage::input_shape(int chunk, int64_t micro_batch) {
  std::vector<int64_t>& shape = input_shapes_[chunk];
  if (shape.empty()) {
    torch::NoGradGuard no_grad;
    const bool was_training = model_->is_training();
    model_->eval();  // no BatchNorm statistics are touched
    const auto probe = model_->forward_units(
        torch::zeros({1, 3, image_size_, image_size_}, model_->parameters()[0].options()), 0, plan_.first(chunk));
    if (was_training) model_->train();
    shape = probe.sizes().vec();
  }
  std::vector<int64_t> sized = shape;
  sized[0] = micro_batch;
  return sized;
}

torch::Tensor PipelineStage::receive_like(const std::vector<int64_t>& shape, int from, int tag, double& waiting) {
  torch::Tensor t = torch::empty(shape, model_->parameters()[0].options().dtype(torch::kFloat32));
  const auto start = Clock::now();
  comm_.receive(t, from, tag);
  waiting += seconds_since(start);
  return t;
}

// One step's micro-batches on this stage: the activations held for backward, the sends in
// flight and the loss sums; forward and backward of (chunk, micro-batch) as the schedule orders.
class PipelineStage::StepState {
 public:
  StepState(PipelineStage& stage, const Batch& batch, int micro_batches, const LossOptions& loss_options, Precision precision,
            GradScaler& scaler)
      : s_(stage), batch_(batch), micro_batches_(micro_batches), mb_(batch.labels.size(0) / micro_batches),
        last_chunk_(stage.plan_.chunks() - 1), loss_options_(loss_options), precision_(precision),
        scaler_(scaler), loss_sum_(torch::zeros({}, batch.labels.options().dtype(torch::kFloat64))),
        correct_(torch::zeros({}, batch.labels.options())) {}

  // Micro-batch m through chunk c: its input is a slice of the images or the previous chunk's
  // activations; its output goes on to the next chunk's rank unless this is the last chunk.
  void forward(int c, int m) {
    torch::Tensor x = c == 0 ? batch_.images.narrow(0, m * mb_, mb_)
                             : s_.receive_like(s_.input_shape(c, mb_), stage_of(c - 1), forward_tag(c, m), result.waiting)
                                   .contiguous(s_.format_)
                                   .requires_grad_(true);
    inputs_[c].resize(micro_batches_);
    outputs_[c].resize(micro_batches_);
    inputs_[c][m] = x;
    {
      AutocastScope autocast(precision_, x.device());
      outputs_[c][m] = s_.model_->forward_units(x, s_.plan_.first(c), s_.plan_.end(c));
    }
    if (c != last_chunk_) {
      torch::Tensor wire = outputs_[c][m].detach().to(torch::kFloat32).contiguous();
      sends_.push_back(s_.comm_.send_async(wire, stage_of(c + 1), forward_tag(c + 1, m)));
    }
  }

  // Its backward: from the loss on the last chunk, else from the gradient the next chunk sends
  // back; the gradient of its input goes back to the chunk before.
  void backward(int c, int m) {
    torch::Tensor& out = outputs_[c][m];
    if (c == last_chunk_) {
      const torch::Tensor labels = batch_.labels.narrow(0, m * mb_, mb_);
      const LossAndCorrect loss = classification_loss(out, labels, loss_options_);
      scaler_.scale_loss(loss.loss / micro_batches_).backward();
      loss_sum_ += loss.loss.detach() * static_cast<double>(mb_);
      correct_ += loss.correct;
    } else {
      const torch::Tensor grad =
          s_.receive_like(out.sizes().vec(), stage_of(c + 1), backward_tag(c + 1, m), result.waiting)
              .contiguous(out.suggest_memory_format());
      out.backward(grad.to(out.scalar_type()));
    }
    if (c > 0) {
      torch::Tensor wire = inputs_[c][m].grad().to(torch::kFloat32).contiguous();
      sends_.push_back(s_.comm_.send_async(wire, stage_of(c - 1), backward_tag(c, m)));
    }
    out = torch::Tensor();  // a finished micro-batch's activations can go
    inputs_[c][m] = torch::Tensor();
  }

  // A send holds its tensor until it completes: let finished ones go, so that a schedule that
  // frees activations early (1F1B) does keep less memory.
  void release_finished_sends() {
    std::vector<Communicator::Work> pending;
    for (auto& work : sends_)
      if (work->isCompleted())
        s_.comm_.wait(work, "pipeline send");
      else
        pending.push_back(work);
    sends_.swap(pending);
  }

  // Waits for the last sends; the sums are read once, here, on the stage with the last chunk.
  void finish() {
    for (auto& work : sends_) s_.comm_.wait(work, "pipeline send");
    sends_.clear();
    if (stage_of(last_chunk_) != s_.stage_) return;
    result.loss_sum = loss_sum_.item<double>();
    result.correct = correct_.item<int64_t>();
  }

  PipelineStepResult result;

 private:
  // Messages are told apart by the chunk that receives them and the micro-batch: activations
  // going into chunk c, and gradients coming back out of it.
  int forward_tag(int chunk, int m) const { return chunk * 2 * micro_batches_ + m; }
  int backward_tag(int chunk, int m) const { return chunk * 2 * micro_batches_ + micro_batches_ + m; }
  int stage_of(int chunk) const { return s_.plan_.stage_of_chunk(chunk); }

  PipelineStage& s_;
  const Batch& batch_;
  int micro_batches_;
  int64_t mb_;
  int last_chunk_;
  const LossOptions& loss_options_;
  Precision precision_;
  GradScaler& scaler_;
  std::map<int, std::vector<torch::Tensor>> inputs_, outputs_;  // per chunk and micro-batch, while held
  std::vector<Communicator::Work> sends_;
  torch::Tensor loss_sum_, correct_;
};

PipelineStepResult PipelineStage::step(const Batch& batch, int micro_batches, const LossOptions& loss_options,
                                       Precision precision, GradScaler& scaler) {
  const auto start = Clock::now();
  const int64_t n = batch.labels.size(0);
  if (micro_batches < 1 || n % micro_batches != 0)
    throw UsageError("--micro-batches " + std::to_string(micro_batches) + " must divide the batch of " +
                     std::to_string(n));
  StepState step(*this, batch, micro_batches, loss_options, precision, scaler);
  const bool on_cpu = model_->parameters()[0].device().is_cpu();  // the allocator counts host memory only
  const double held_before = on_cpu ? static_cast<double>(allocated_bytes()) : 0;
  for (const PipelineOp& op : stage_ops(plan_, stage_, micro_batches, schedule_)) {
    if (op.forward)
      step.forward(op.chunk, op.micro_batch);
    else
      step.backward(op.chunk, op.micro_batch);
    step.release_finished_sends();
    if (on_cpu)
      step.result.held_peak_bytes =
          std::max(step.result.held_peak_bytes, static_cast<double>(allocated_bytes()) - held_before);
  }
  step.finish();
  step.result.seconds = seconds_since(start);
  return step.result;
}

void PipelineStage::gather(torch::optim::SGD& optimizer) {
  auto& state = optimizer.state();
  for (int64_t u = 0; u < model_->unit_count(); ++u) {
    const int owner = plan_.stage_of(u);
    std::vector<torch::Tensor> tensors = model_->unit_parameters(u);
    for (const auto& b : model_->unit_buffers(u)) tensors.push_back(b);
    // Momentum buffers ride along; a rank that never trained this unit makes empty ones first.
    for (const auto& p : model_->unit_parameters(u)) {
      auto key = compat::optimizer_state_key(state, p);
      auto it = state.find(key);
      if (it == state.end()) {
        auto fresh = std::make_unique<torch::optim::SGDParamState>();
        fresh->momentum_buffer(torch::zeros_like(p));
        it = state.emplace(key, std::move(fresh)).first;
      }
      auto& sgd_state = static_cast<torch::optim::SGDParamState&>(*it->second);
      if (!sgd_state.momentum_buffer().defined()) sgd_state.momentum_buffer(torch::zeros_like(p));
      tensors.push_back(sgd_state.momentum_buffer());
    }
    comm_.broadcast(tensors, owner);
  }
}

}  // namespace histotrain
