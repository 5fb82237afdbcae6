// PowerSGD (Vogels, Karimireddy and Jaggi, NeurIPS 2019): each matrix-shaped gradient M (a
// convolution's weight viewed as out x in*k*k, oriented so that it has no more rows than columns)
// travels as two thin factors. With Q from the last step (warm start; the same on every rank):
//   P = M Q, summed over ranks, orthonormalised (Gram-Schmidt: the same on every rank);
//   Q = M^T P, summed over ranks and divided by their number;
//   the gradient becomes P Q^T, the rank-R approximation of the mean.
// Error feedback: what this rank's approximation P (M^T P)^T missed of M is added to its next
// gradient, so nothing is lost, only delayed. With R at least the matrix's smaller side the result
// is the exact mean. Two all-reduces of (rows + cols) x R values replace one of rows x cols.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "distributed/communicator.h"

namespace histotrain {

class PowerSgd {
 public:
  // `matrices`: the parameters to compress (dim >= 2), in registration order; `seed`: the first
  // Q's, the same on every rank. `groups` (>= 1): the matrices are split, in the order backward
  // produces their gradients (the reverse), into this many groups of about equal size; each
  // group's factors travel in their own all-reduces, so that the first group's can leave while
  // backward still runs.
  PowerSgd(std::vector<torch::Tensor> matrices, int rank, uint64_t seed, int groups = 1);

  // Replaces every matrix's .grad (this rank's gradient) with the approximation of the mean over
  // the ranks of `comm`: the steps below, all at once, from the gradients in .grad.
  void reduce(Communicator& comm);

  // The same in steps, overlapping backward (every rank calls them in the same order):
  //   add_gradient for each matrix as its gradient arrives: error feedback added, P = M Q;
  //   start_p(g) once group g's gradients are all in: the sum of its Ps starts;
  //   start_q(g), groups in order, after group g's start_p (at the same point of the step on
  //     every rank, as every collective): the summed P orthonormalised, this rank's Q = M^T P
  //     (the residual follows at the next add_gradient); the sum of the Qs starts;
  //   finish(g), groups in order: the mean Q, and the gradient P Q^T.
  size_t groups() const { return groups_.size(); }
  // The group of matrix i; add_gradient returns whether that group is now complete.
  size_t group_of(size_t i) const { return matrices_[i].group; }
  bool add_gradient(size_t i, const torch::Tensor& grad);
  bool group_complete(size_t g) const { return groups_[g].pending == 0; }
  bool group_half_in(size_t g) const { return 2 * groups_[g].pending <= groups_[g].members.size(); }
  void add_missing_gradients(size_t g);  // matrices of g that took no part in this step: zero
  void start_p(Communicator& comm, size_t g);
  void start_q(Communicator& comm, size_t g);
  void finish(Communicator& comm, size_t g);

  // The state a resumed run needs: the Qs (shared by the ranks) and this rank's error feedback.
  std::vector<std::pair<std::string, torch::Tensor>> shared_state() const;
  std::vector<std::pair<std::string, torch::Tensor>> rank_state() const;
  // Restores them (names as the above give them); throws Error for a shape that does not fit.
  void load_shared_state(const std::vector<std::pair<std::string, torch::Tensor>>& state);
  void load_rank_state(const std::vector<std::pair<std::string, torch::Tensor>>& state);

  // Values sent per step, against the uncompressed gradients' count; the first all-reduce of a
  // group carries its P factors (rows x R each), the second its Qs (cols x R).
  int64_t compressed_values() const { return p_values() + q_values(); }
  int64_t p_values() const;
  int64_t q_values() const;
  int64_t uncompressed_values() const;
  // The last step's own arithmetic (its time less the waits for the all-reduces).
  double last_arithmetic_seconds() const { return last_arithmetic_s_; }
  // This step's so far (the part done while backward still runs, when asked as it returns).
  double arithmetic_so_far() const { return arithmetic_s_; }

 private:
  struct Matrix {
    torch::Tensor param;
    int64_t rows = 0, cols = 0;  // as viewed: rows <= cols
    bool transposed = false;     // the parameter's view is cols x rows
    torch::Tensor q_t;           // r x cols: the last step's mean Q, transposed (the warm start)
    torch::Tensor error;         // rows x cols, less the correction below while it is pending
    torch::Tensor p;             // this step's P (rows x r)
    // This rank's Q of the last step (r x cols): with p, its approximation, which the error still
    // holds and loses at the next add_gradient (in the same pass as the new gradient joins it).
    torch::Tensor sent_q_t;
    bool correction_pending = false;
    size_t group = 0;
    bool arrived = false;        // this step's gradient is in
  };
  struct Group {
    std::vector<size_t> members;  // indices into matrices_
    size_t pending = 0;           // gradients still to arrive this step
    torch::Tensor p_flat, q_flat;
    Communicator::Work p_work, q_work;
  };
  torch::Tensor view_of(const Matrix& m, const torch::Tensor& t) const;  // as rows x cols
  torch::Tensor residual_of(const Matrix& m) const;  // the error with any pending correction applied
  void split_into_groups(int groups);
  std::vector<Matrix> matrices_;
  std::vector<Group> groups_;
  double arithmetic_s_ = 0;  // this step's so far
  double last_arithmetic_s_ = 0;
};

// Gram-Schmidt on the columns of `p` (in place): orthonormal columns spanning the same space; a
// column that adds nothing becomes zero instead of noise.
void orthonormalise_columns(torch::Tensor& p);

}  // namespace histotrain
