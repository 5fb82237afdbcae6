// The update of torch::optim::SGD as kernels that beat its step(): multi-tensor on a GPU, one
// pass per parameter on CPUs. The trainer updates with them and the pipeline's cost probe times
// them, so that a stage plan is balanced on the update training really runs.
#pragma once
#include <torch/torch.h>

namespace histotrain {

// The update of torch::optim::SGD (Nesterov momentum, per-group weight decay, no dampening) with
// multi-tensor (foreach) kernels: a few launches per parameter group instead of about five per
// parameter, which a GPU step of a few milliseconds cannot afford. Momentum buffers live in the
// optimizer's own state, so checkpoints and SGD::step() see the same values; a missing buffer
// starts at zero, which gives the same first step as SGD's clone of the gradient.
void multi_tensor_sgd_step(torch::optim::SGD& optimizer);
// The same with the learning rate read from `neg_lr`, a 0-dim tensor on the parameters' device
// holding -lr: a captured CUDA graph then reads the current value at each replay.
void multi_tensor_sgd_step(torch::optim::SGD& optimizer, const torch::Tensor& neg_lr);

// The same update on CPUs, each parameter's in one pass over its memory: parameter, gradient and
// momentum buffer read once, parameter and buffer written once (5 tensor-sized transfers, against
// 14 and two temporaries in SGD::step()'s five ATen ops). Values agree with SGD::step() to
// rounding (no fused multiply-adds); tensors of another dtype or layout take ATen's ops, and
// dampening takes SGD::step() itself.
void cpu_sgd_step(torch::optim::SGD& optimizer);

// The faster of the two updates where the parameters live. On a GPU the multi-tensor update
// saves a kernel launch per parameter and step. On CPUs it is no faster and allocates every step
// direction at once (an A/B run measured the whole step slower); there the update is memory-bound,
// and one pass per parameter is what pays.
void fast_sgd_step(torch::optim::SGD& optimizer, const torch::Device& device);

// --clip-grad: scales every gradient of `optimizer`'s parameters by max_norm / norm when their
// global L2 norm exceeds max_norm; returns the norm found (before clipping).
double clip_gradient_norm(torch::optim::Optimizer& optimizer, double max_norm);

// Drops the gradients instead of zero-filling them (PyTorch's set_to_none): backward then
// writes fresh tensors, and no memset per parameter runs each step. LibTorch 1.13's
// Optimizer::zero_grad() can only zero-fill.
void clear_gradients(torch::optim::Optimizer& optimizer);

}  // namespace histotrain
