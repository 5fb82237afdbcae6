#include "distributed/power_sgd.h"

#include <map>

#include "distributed/power_sgd_kernels.h"
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

// The kernels' view of a float tensor (nullptr for none).
float* floats(const torch::Tensor& t) { return t.defined() ? t.data_ptr<float>() : nullptr; }

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
    m.q_t = at::randn({m.cols, r}, generator, torch::TensorOptions().dtype(torch::kFloat32)).t().contiguous();
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

namespace {

LowRankShape shape_of(int64_t rows, int64_t cols, const torch::Tensor& q_t) { return {rows, cols, q_t.size(0)}; }

}  // namespace

torch::Tensor PowerSgd::residual_of(const Matrix& m) const {
  if (!m.correction_pending) return m.error;
  torch::Tensor residual = m.error.clone();
  refresh_and_project(shape_of(m.rows, m.cols, m.q_t), floats(residual), nullptr, floats(m.p), floats(m.sent_q_t),
                      nullptr, nullptr);
  return residual;
}

// In place, in one pass over the matrix (power_sgd_kernels.h): the error buffer loses the last
// step's approximation and gains this rank's gradient, and so becomes M; P = M Q is taken on the way.
// The gradient is copied first only where it is not a row-major rows x cols matrix already (tall
// matrices, channels-last).
bool PowerSgd::add_gradient(size_t i, const torch::Tensor& grad) {
  torch::NoGradGuard no_grad;
  const auto start = Clock::now();
  Matrix& m = matrices_[i];
  const torch::Tensor g = grad.defined() ? view_of(m, grad).to(torch::kFloat32).contiguous() : torch::Tensor();
  const torch::Tensor p = torch::empty({m.rows, m.q_t.size(0)});
  refresh_and_project(shape_of(m.rows, m.cols, m.q_t), floats(m.error), floats(g),
                      m.correction_pending ? floats(m.p) : nullptr, m.correction_pending ? floats(m.sent_q_t) : nullptr,
                      floats(m.q_t), floats(p));
  m.p = p;
  m.correction_pending = false;
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
    m.sent_q_t = torch::empty_like(m.q_t);
    column_factors(shape_of(m.rows, m.cols, m.q_t), floats(m.error), floats(m.p), floats(m.sent_q_t));
    m.correction_pending = true;  // M minus this rank's approximation P Q^T, at the next add_gradient
    qs.push_back(m.sent_q_t);
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
    m.q_t = group.q_flat.narrow(0, offset, m.q_t.numel()).view(m.q_t.sizes()).clone();  // the next step starts from it
    offset += m.q_t.numel();
    torch::Tensor& grad = m.param.mutable_grad();
    if (!grad.defined()) grad = torch::empty_like(m.param);
    // P Q^T: a plain matrix product with inner size R, which BLAS does at the memory's speed.
    if (grad.is_contiguous() && !m.transposed) {
      torch::Tensor rows_by_cols = grad.view({m.rows, m.cols});
      at::mm_out(rows_by_cols, m.p, m.q_t);  // straight into the gradient
    } else {  // channels-last or tall: through a temporary, copied with the gradient's strides
      const torch::Tensor approximation = m.p.mm(m.q_t);
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
  // Saved as cols x r, the shape of Q itself.
  for (size_t i = 0; i < matrices_.size(); ++i) out.emplace_back("q." + std::to_string(i), matrices_[i].q_t.t().contiguous());
  return out;
}

std::vector<std::pair<std::string, torch::Tensor>> PowerSgd::rank_state() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (size_t i = 0; i < matrices_.size(); ++i) out.emplace_back("error." + std::to_string(i), residual_of(matrices_[i]));
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
    // A fresh row-major float tensor whatever the saved one's strides: the kernels walk its memory.
    *targets[i] = torch::empty(targets[i]->sizes()).copy_(found->second);
  }
}

}  // namespace

void PowerSgd::load_shared_state(const std::vector<std::pair<std::string, torch::Tensor>>& state) {
  std::vector<torch::Tensor> qs;  // cols x r, as saved
  for (auto& m : matrices_) qs.push_back(m.q_t.t());
  std::vector<torch::Tensor*> targets;
  for (auto& q : qs) targets.push_back(&q);
  load_into(state, "q", targets);
  for (size_t i = 0; i < matrices_.size(); ++i) matrices_[i].q_t = qs[i].t().contiguous();
}

void PowerSgd::load_rank_state(const std::vector<std::pair<std::string, torch::Tensor>>& state) {
  std::vector<torch::Tensor*> targets;
  for (auto& m : matrices_) targets.push_back(&m.error);
  load_into(state, "error", targets);
  for (auto& m : matrices_) m.correction_pending = false;  // the saved error is the residual itself
}

int64_t PowerSgd::p_values() const {
  int64_t n = 0;
  for (const auto& m : matrices_) n += m.rows * m.q_t.size(0);
  return n;
}

int64_t PowerSgd::q_values() const {
  int64_t n = 0;
  for (const auto& m : matrices_) n += m.cols * m.q_t.size(0);
  return n;
}

int64_t PowerSgd::uncompressed_values() const {
  int64_t n = 0;
  for (const auto& m : matrices_) n += m.rows * m.cols;
  return n;
}

}  // namespace histotrain
