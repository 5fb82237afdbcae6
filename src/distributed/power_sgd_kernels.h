// PowerSGD's passes over a gradient matrix that read it once each. As ATen ops, a step read
// ResNet-18's matrices (11 M values) five times: the error feedback added, P = M Q, Q = M^T P, the
// error update, P Q^T; the products with an inner size of 4 at about half a copy's speed. Here the
// error update rides along with the next step's first pass, which also adds the gradient and takes
// P = M Q, and Q = M^T P runs in column blocks; both were measured faster than the ATen ops they
// replace (docs/distributed.md, docs/benchmarks.md). P Q^T stays with BLAS, which is as fast.
//
// Matrices are float, row-major, rows x cols; P is rows x rank (row-major); Q is kept transposed,
// rank x cols, so that every inner loop runs along a matrix row. Rows are split over ATen's
// threads (column blocks for column_factors); the results do not depend on the number of threads.
#pragma once
#include <cstdint>

namespace histotrain {

struct LowRankShape {
  int64_t rows, cols, rank;
};

// For each row i of `error`: error[i,:] -= sum over k of p_old[i,k] q_old_t[k,:] (k in order; when
// p_old is given), then error[i,:] += grad[i,:] (when grad is given); then, when p is given,
// p[i,k] = error[i,:] . q_t[k,:]. Applying the correction alone and the gradient in a later call
// gives the same bits as one call with both.
void refresh_and_project(LowRankShape s, float* error, const float* grad, const float* p_old, const float* q_old_t,
                         const float* q_t, float* p);

// q_t[k,:] = sum over i of p[i,k] m[i,:]: the column factors (Q = M^T P), transposed.
void column_factors(LowRankShape s, const float* m, const float* p, float* q_t);

}  // namespace histotrain
