#include "dist/power_sgd.h"

#include <map>

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

PowerSgd::PowerSgd(std::vector<torch::Tensor> matrices, int rank, uint64_t seed) {
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
}

torch::Tensor PowerSgd::view_of(const Matrix& m, const torch::Tensor& t) const {
  const torch::Tensor flat = t.reshape({m.transposed ? m.cols : m.rows, m.transposed ? m.rows : m.cols});
  return m.transposed ? flat.t() : flat;
}

void PowerSgd::reduce(Communicator& comm) {
  torch::NoGradGuard no_grad;
  // In place where it can be: the error buffer becomes M (this rank's gradient plus what its
  // earlier approximations missed) and then the new residual; the gradient receives the result.
  // Each matrix is read and written a few times, with no gradient-sized temporaries.
  std::vector<torch::Tensor> ps, qs;
  for (auto& m : matrices_) {
    m.error.add_(view_of(m, m.param.grad()));
    ps.push_back(m.error.matmul(m.q));
  }
  torch::Tensor flat_p = flatten(ps);
  comm.all_reduce_sum(flat_p);
  unflatten(flat_p, ps);
  for (size_t i = 0; i < matrices_.size(); ++i) {
    Matrix& m = matrices_[i];
    orthonormalise_columns(ps[i]);
    qs.push_back(m.error.t().matmul(ps[i]));
    m.error.addmm_(ps[i], qs[i].t(), /*beta=*/1, /*alpha=*/-1);  // M minus this rank's approximation
  }
  torch::Tensor flat_q = flatten(qs);
  comm.all_reduce_sum(flat_q);
  flat_q.div_(comm.world_size());
  unflatten(flat_q, qs);
  for (size_t i = 0; i < matrices_.size(); ++i) {
    Matrix& m = matrices_[i];
    m.q = qs[i];  // the next step starts from this step's Q
    torch::Tensor& grad = m.param.mutable_grad();
    if (grad.is_contiguous() && !m.transposed) {
      torch::Tensor rows_by_cols = grad.view({m.rows, m.cols});
      at::mm_out(rows_by_cols, ps[i], qs[i].t());  // straight into the gradient
    } else {  // channels-last or tall: through a temporary, copied with the gradient's strides
      const torch::Tensor approximation = ps[i].mm(qs[i].t());
      grad.copy_((m.transposed ? approximation.t() : approximation).reshape(grad.sizes()));
    }
  }
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

int64_t PowerSgd::compressed_values() const {
  int64_t n = 0;
  for (const auto& m : matrices_) n += (m.rows + m.cols) * m.q.size(1);
  return n;
}

int64_t PowerSgd::uncompressed_values() const {
  int64_t n = 0;
  for (const auto& m : matrices_) n += m.rows * m.cols;
  return n;
}

}  // namespace histotrain
