#include "core/weight_average.h"

#include <algorithm>

#include "core/amp.h"

namespace histotrain {

namespace {

// Parameters then buffers, in registration order: the same order in two models of one architecture.
std::vector<torch::Tensor> state_tensors(torch::nn::Module& module) {
  std::vector<torch::Tensor> all = module.parameters();
  for (auto& b : module.buffers()) all.push_back(b);
  return all;
}

}  // namespace

WeightAverage::WeightAverage(ResNet& model, double decay) : decay_(decay) {
  average_ = ResNet(model->arch, model->fc->options.out_features());
  average_->to(model->fc->weight.device());
  if (model->conv1->weight.is_contiguous(torch::MemoryFormat::ChannelsLast) && !model->conv1->weight.is_contiguous())
    to_channels_last(*average_);
  average_->eval();
  for (auto& p : average_->parameters()) p.set_requires_grad(false);
  const auto from = state_tensors(*model), to = state_tensors(*average_);
  for (size_t i = 0; i < from.size(); ++i) {
    const bool averaged = from[i].is_floating_point();
    (averaged ? source_ : source_int_).push_back(from[i]);
    (averaged ? target_ : target_int_).push_back(to[i]);
  }
  reset();
}

double WeightAverage::decay_at(int64_t step) const {
  return std::min(decay_, (1.0 + static_cast<double>(step)) / (10.0 + static_cast<double>(step)));
}

void WeightAverage::update(int64_t step) {
  torch::NoGradGuard no_grad;
  const double share = 1 - decay_at(step);
  for (size_t i = 0; i < target_.size(); ++i) target_[i].lerp_(source_[i], share);
  for (size_t i = 0; i < target_int_.size(); ++i) target_int_[i].copy_(source_int_[i]);
}

void WeightAverage::update(const torch::Tensor& new_share) {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < target_.size(); ++i) target_[i].lerp_(source_[i], new_share);
  for (size_t i = 0; i < target_int_.size(); ++i) target_int_[i].copy_(source_int_[i]);
}

void WeightAverage::reset() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < target_.size(); ++i) target_[i].copy_(source_[i]);
  for (size_t i = 0; i < target_int_.size(); ++i) target_int_[i].copy_(source_int_[i]);
}

}  // namespace histotrain
