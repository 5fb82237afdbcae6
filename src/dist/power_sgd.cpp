#include "dist/power_sgd.h"

#include <map>

#include "util/clock.h"
#include "util/errors.h"

namespace histotrain {

namespace {

// One flat tensor of every part, in order, and back.
torch::Tensor flatten(const std::vector<torch::Tensor>& parts) {
  std::vector<torch::Tensor> flat;
  for (const auto& p : parts) flat.push_back(p.reshape(-1));
  return torch::cat(flat);
}

void unflatten(const torch::Tensor& flat, std::vector<torch::Tensor>& parts) {
  int64_t offset = 0;
  for (auto& p : parts) {
    p.copy_(flat.narrow(0, offset, p.numel()).view(p.sizes()));
    offset += p.numel();
  }
}

}  // namespace

void orthonormalise_columns(torch::Tensor& p) {
  torch::NoGradGuard no_grad;
  const int64_t columns = p.size(1);
  for (int64_t i = 0; i < columns; ++i) {
    auto column = p.select(1, i);
    const double norm = column.norm().item<double>();
    // Past the matrix's rank a column is rounding noise: zero, not amplified to unit length.
    if (norm < 1e-12) {
      column.zero_();
      continue;
    }
    column.div_(norm);
    if (i + 1 < columns) {
      auto rest = p.narrow(1, i + 1, columns - i - 1);
      rest.sub_(column.unsqueeze(1) * column.matmul(rest).unsqueeze(0));
    }
  }
}

PowerSgd::PowerSgd(std::vector<torch::Tensor> matrices, int rank, uint64_t seed, int groups) {
  torch::NoGradGuard no_grad;
  auto generator = at::detail::createCPUGenerator(seed * 0x9e3779b97f4a7c15ull + 17);
  for (auto& param : matrices) {
    Matrix m;
    m.param = param;
    const int64_t a = param.size(0), b = param.numel() / param.size(0);
    m.transposed = a > b;
    m.rows = std::min(a, b);
    m.cols = std::max(a, b);
    const int64_t r = std::min<int64_t>(rank, m.rows);
    m.q = at::randn({m.cols, r}, generator, torch::TensorOptions().dtype(torch::kFloat32));
    m.error = torch::zeros({m.rows, m.cols});
    matrices_.push_back(std::move(m));
  }
  split_into_groups(std::max(1, groups));
}

void PowerSgd::split_into_groups(int groups) {
  int64_t total = 0;
  for (const auto& m : matrices_) total += m.rows * m.cols;
  groups_.assign(1, Group{});
  int64_t so_far = 0;
  for (size_t i = matrices_.size(); i-- > 0;) {  // backward's order
    const int64_t share_end = total * static_cast<int64_t>(groups_.size()) / groups;
    if (so_far >= share_end && static_cast<int>(groups_.size()) < groups && !groups_.back().members.empty())
      groups_.emplace_back();
    matrices_[i].group = groups_.size() - 1;
    groups_.back().members.push_back(i);
    so_far += matrices_[i].rows * matrices_[i].cols;
  }
  for (auto& g : groups_) g.pending = g.members.size();
}

torch::Tensor PowerSgd::view_of(const Matrix& m, const torch::Tensor& t) const {
  const torch::Tensor flat = t.reshape({m.transposed ? m.cols : m.rows, m.transposed ? m.rows : m.cols});
  return m.transposed ? flat.t() : flat;
}

// In place where it can be: the error buffer becomes M (this rank's gradient plus what its
// earlier approximations missed) and then the new residual; the gradient receives the result.
// Each matrix is read and written a few times, with no gradient-sized temporaries.
bool PowerSgd::add_gradient(size_t i, const torch::Tensor& grad) {
  torch::NoGradGuard no_grad;
  const auto start = Clock::now();
  Matrix& m = matrices_[i];
  if (grad.defined()) m.error.add_(view_of(m, grad));
  m.p = m.error.matmul(m.q);
  m.arrived = true;
  arithmetic_s_ += seconds_since(start);
  return --groups_[m.group].pending == 0;
}

void PowerSgd::add_missing_gradients(size_t g) {
  for (const size_t i : groups_[g].members)
    if (!matrices_[i].arrived) add_gradient(i, torch::Tensor());
}

void PowerSgd::start_p(Communicator& comm, size_t g) {
  Group& group = groups_[g];
  std::vector<torch::Tensor> ps;
  for (const size_t i : group.members) ps.push_back(matrices_[i].p);
  group.p_flat = flatten(ps);
  group.p_work = comm.all_reduce_sum_async(group.p_flat);
}

void PowerSgd::start_q(Communicator& comm, size_t g) {
  torch::NoGradGuard no_grad;
  Group& group = groups_[g];
  comm.wait(group.p_work, "PowerSGD's P factors");
  const auto start = Clock::now();
  std::vector<torch::Tensor> ps, qs;
  for (const size_t i : group.members) ps.push_back(matrices_[i].p);
  unflatten(group.p_flat, ps);
  for (const size_t i : group.members) {
    Matrix& m = matrices_[i];
    orthonormalise_columns(m.p);
    qs.push_back(m.error.t().matmul(m.p));
    m.error.addmm_(m.p, qs.back().t(), /*beta=*/1, /*alpha=*/-1);  // M minus this rank's approximation
  }
  group.q_flat = flatten(qs);
  arithmetic_s_ += seconds_since(start);
  group.q_work = comm.all_reduce_sum_async(group.q_flat);
}

void PowerSgd::finish(Communicator& comm, size_t g) {
  torch::NoGradGuard no_grad;
  Group& group = groups_[g];
  comm.wait(group.q_work, "PowerSGD's Q factors");
  const auto start = Clock::now();
  group.q_flat.div_(comm.world_size());
  int64_t offset = 0;
  for (const size_t i : group.members) {
    Matrix& m = matrices_[i];
    m.q = group.q_flat.narrow(0, offset, m.q.numel()).view(m.q.sizes()).clone();  // the next step starts from it
    offset += m.q.numel();
    torch::Tensor& grad = m.param.mutable_grad();
    if (!grad.defined()) grad = torch::empty_like(m.param);
    if (grad.is_contiguous() && !m.transposed) {
      torch::Tensor rows_by_cols = grad.view({m.rows, m.cols});
      at::mm_out(rows_by_cols, m.p, m.q.t());  // straight into the gradient
    } else {  // channels-last or tall: through a temporary, copied with the gradient's strides
      const torch::Tensor approximation = m.p.mm(m.q.t());
      grad.copy_((m.transposed ? approximation.t() : approximation).reshape(grad.sizes()));
    }
    m.arrived = false;
  }
  group.pending = group.members.size();
  arithmetic_s_ += seconds_since(start);
  if (g + 1 == groups_.size()) {
    last_arithmetic_s_ = arithmetic_s_;
    arithmetic_s_ = 0;
  }
}

void PowerSgd::reduce(Communicator& comm) {
  for (size_t i = 0; i < matrices_.size(); ++i) add_gradient(i, matrices_[i].param.grad());
  for (size_t g = 0; g < groups_.size(); ++g) start_p(comm, g);
  for (size_t g = 0; g < groups_.size(); ++g) start_q(comm, g);
  for (size_t g = 0; g < groups_.size(); ++g) finish(comm, g);
}

std::vector<std::pair<std::string, torch::Tensor>> PowerSgd::shared_state() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (size_t i = 0; i < matrices_.size(); ++i) out.emplace_back("q." + std::to_string(i), matrices_[i].q);
  return out;
}

std::vector<std::pair<std::string, torch::Tensor>> PowerSgd::rank_state() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (size_t i = 0; i < matrices_.size(); ++i) out.emplace_back("error." + std::to_string(i), matrices_[i].error);
  return out;
}

namespace {

void load_into(const std::vector<std::pair<std::string, torch::Tensor>>& state, const std::string& kind,
               std::vector<torch::Tensor*> targets) {
  const std::map<std::string, torch::Tensor> by_name(state.begin(), state.end());
  if (by_name.size() != targets.size())
    throw Error("the PowerSGD state holds " + std::to_string(by_name.size()) + " " + kind + " tensors, this model " +
                std::to_string(targets.size()));
  for (size_t i = 0; i < targets.size(); ++i) {
    const std::string name = kind + "." + std::to_string(i);
    const auto found = by_name.find(name);
    if (found == by_name.end() || found->second.sizes() != targets[i]->sizes())
      throw Error("the PowerSGD state's '" + name + "' is missing or does not fit this model");
    *targets[i] = found->second.to(torch::kFloat32).clone();
  }
}

}  // namespace

void PowerSgd::load_shared_state(const std::vector<std::pair<std::string, torch::Tensor>>& state) {
  std::vector<torch::Tensor*> targets;
  for (auto& m : matrices_) targets.push_back(&m.q);
  load_into(state, "q", targets);
}

void PowerSgd::load_rank_state(const std::vector<std::pair<std::string, torch::Tensor>>& state) {
  std::vector<torch::Tensor*> targets;
  for (auto& m : matrices_) targets.push_back(&m.error);
  load_into(state, "error", targets);
}

int64_t PowerSgd::p_values() const {
  int64_t n = 0;
  for (const auto& m : matrices_) n += m.rows * m.q.size(1);
  return n;
}

int64_t PowerSgd::q_values() const {
  int64_t n = 0;
  for (const auto& m : matrices_) n += m.cols * m.q.size(1);
  return n;
}

int64_t PowerSgd::uncompressed_values() const {
  int64_t n = 0;
  for (const auto& m : matrices_) n += m.rows * m.cols;
  return n;
}

}  // namespace histotrain
