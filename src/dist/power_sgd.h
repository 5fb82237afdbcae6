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

#include "dist/communicator.h"

namespace histotrain {

class PowerSgd {
 public:
  // `matrices`: the parameters to compress (dim >= 2); `seed`: the first Q's, the same on every rank.
  PowerSgd(std::vector<torch::Tensor> matrices, int rank, uint64_t seed);

  // Replaces every matrix's .grad (this rank's gradient) with the approximation of the mean over
  // the ranks of `comm`; two all-reduces.
  void reduce(Communicator& comm);

  // The state a resumed run needs: the Qs (shared by the ranks) and this rank's error feedback.
  std::vector<std::pair<std::string, torch::Tensor>> shared_state() const;
  std::vector<std::pair<std::string, torch::Tensor>> rank_state() const;
  // Restores them (names as the above give them); throws Error for a shape that does not fit.
  void load_shared_state(const std::vector<std::pair<std::string, torch::Tensor>>& state);
  void load_rank_state(const std::vector<std::pair<std::string, torch::Tensor>>& state);

  // Values sent per step, against the uncompressed gradients' count.
  int64_t compressed_values() const;
  int64_t uncompressed_values() const;

 private:
  struct Matrix {
    torch::Tensor param;
    int64_t rows = 0, cols = 0;  // as viewed: rows <= cols
    bool transposed = false;     // the parameter's view is cols x rows
    torch::Tensor q, error;      // cols x r; rows x cols
  };
  torch::Tensor view_of(const Matrix& m, const torch::Tensor& t) const;  // as rows x cols
  std::vector<Matrix> matrices_;
};

// Gram-Schmidt on the columns of `p` (in place): orthonormal columns spanning the same space; a
// column that adds nothing becomes zero instead of noise.
void orthonormalise_columns(torch::Tensor& p);

}  // namespace histotrain
