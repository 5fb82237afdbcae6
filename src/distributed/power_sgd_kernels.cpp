#include "distributed/power_sgd_kernels.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>

namespace histotrain {

namespace {

// Eight floats as one value (GCC/Clang vector extensions): two SSE registers on a baseline x86-64
// build, one AVX register in the row functions' AVX2 clones, chosen at run time where the CPU has
// it (at SSE's width they ran slower than OpenBLAS's products, which pick AVX themselves).
// The file is compiled with -ffp-contract=off: no clone fuses a multiply with an add, so every CPU
// rounds alike and ranks on different hosts stay equal.
typedef float Vec8 __attribute__((vector_size(32)));
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define HISTOTRAIN_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define HISTOTRAIN_CLONES
#endif

// The helpers below take and return Vec8 by value, which an AVX2 clone and a baseline function
// pass differently (in a register against through memory): they must always be inlined into
// their caller, unoptimised (-O0, the sanitizer build) too, or the two sides disagree on where
// the value is.
#define HISTOTRAIN_INLINE inline __attribute__((always_inline))

HISTOTRAIN_INLINE Vec8 load8(const float* x) {
  Vec8 v;
  std::memcpy(&v, x, sizeof v);
  return v;
}
HISTOTRAIN_INLINE void store8(float* x, Vec8 v) { std::memcpy(x, &v, sizeof v); }
HISTOTRAIN_INLINE Vec8 splat(float a) { return Vec8{a, a, a, a, a, a, a, a}; }
HISTOTRAIN_INLINE float sum_of(Vec8 v) {
  float s = 0;
  for (int l = 0; l < 8; ++l) s += v[l];
  return s;
}

constexpr int64_t kMaxRank = 64;  // GradCompression::parse allows up to 64

// Rows (or column blocks) per task: a thread's share is worth starting only from ~256 KiB of matrix.
int64_t grain_for(int64_t length) { return std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, length)); }

// refresh_and_project for `n` (1 or 2) consecutive rows, the second `cols` after the first: two
// rows at a time share each load of Q (and of the last step's Q), which otherwise come from the
// second-level cache once per row and bound the pass. R > 0 fixes the rank at compile time (the
// common ranks), R = 0 reads it from `rank`. Every element takes the same operations in the same
// order, whichever the path.
template <int R, int N>
HISTOTRAIN_CLONES void refresh_rows(float* e, const float* g, const float* p_old, const float* q_old_t,
                                    const float* q_t, float* p, int64_t cols, int64_t rank) {
  const int64_t r = R > 0 ? R : rank;
  Vec8 partial[N][R > 0 ? R : kMaxRank] = {};
  float tail[N][R > 0 ? R : kMaxRank] = {};
  int64_t j = 0;
  for (; j + 8 <= cols; j += 8) {
    Vec8 v[N];
    for (int n = 0; n < N; ++n) v[n] = load8(e + n * cols + j);
    if (p_old)
      for (int64_t k = 0; k < r; ++k) {
        const Vec8 q = load8(q_old_t + k * cols + j);
        for (int n = 0; n < N; ++n) v[n] -= splat(p_old[n * r + k]) * q;
      }
    if (g)
      for (int n = 0; n < N; ++n) v[n] += load8(g + n * cols + j);
    for (int n = 0; n < N; ++n) store8(e + n * cols + j, v[n]);
    if (p)
      for (int64_t k = 0; k < r; ++k) {
        const Vec8 q = load8(q_t + k * cols + j);
        for (int n = 0; n < N; ++n) partial[n][k] += v[n] * q;
      }
  }
  for (; j < cols; ++j)
    for (int n = 0; n < N; ++n) {
      float v = e[n * cols + j];
      if (p_old)
        for (int64_t k = 0; k < r; ++k) v -= p_old[n * r + k] * q_old_t[k * cols + j];
      if (g) v += g[n * cols + j];
      e[n * cols + j] = v;
      if (p)
        for (int64_t k = 0; k < r; ++k) tail[n][k] += v * q_t[k * cols + j];
    }
  if (p)
    for (int n = 0; n < N; ++n)
      for (int64_t k = 0; k < r; ++k) p[n * r + k] = sum_of(partial[n][k]) + tail[n][k];
}

// q_t[k, first:first+width] += sum over rows i of p[i,k] m[i, first:...], four rows at a time so
// that each stretch of Q is loaded and stored once per four rows.
template <int R>
HISTOTRAIN_CLONES void add_column_block(const float* m, const float* p, float* q_t, int64_t rows, int64_t cols, int64_t rank,
                      int64_t first, int64_t width) {
  const int64_t r = R > 0 ? R : rank;
  int64_t i = 0;
  for (; i + 4 <= rows; i += 4) {
    const float* m0 = m + i * cols + first;
    const float* pi = p + i * r;
    int64_t j = 0;
    for (; j + 8 <= width; j += 8) {
      const Vec8 a = load8(m0 + j), b = load8(m0 + cols + j), c = load8(m0 + 2 * cols + j), d = load8(m0 + 3 * cols + j);
      for (int64_t k = 0; k < r; ++k) {
        float* q = q_t + k * cols + first + j;
        store8(q, load8(q) + splat(pi[k]) * a + splat(pi[r + k]) * b + splat(pi[2 * r + k]) * c +
                      splat(pi[3 * r + k]) * d);
      }
    }
    for (; j < width; ++j)
      for (int64_t k = 0; k < r; ++k) {
        float& q = q_t[k * cols + first + j];
        q = q + pi[k] * m0[j] + pi[r + k] * m0[cols + j] + pi[2 * r + k] * m0[2 * cols + j] +
            pi[3 * r + k] * m0[3 * cols + j];
      }
  }
  for (; i < rows; ++i)
    for (int64_t k = 0; k < r; ++k) {
      const float a = p[i * r + k];
      for (int64_t j = 0; j < width; ++j) q_t[k * cols + first + j] += a * m[i * cols + first + j];
    }
}

// Calls f with the rank as a compile-time constant where it is a common one.
template <typename F>
void with_rank(int64_t rank, F&& f) {
  switch (rank) {
    case 1: return f(std::integral_constant<int, 1>());
    case 2: return f(std::integral_constant<int, 2>());
    case 4: return f(std::integral_constant<int, 4>());
    case 8: return f(std::integral_constant<int, 8>());
    default: return f(std::integral_constant<int, 0>());
  }
}

}  // namespace

void refresh_and_project(LowRankShape s, float* error, const float* grad, const float* p_old, const float* q_old_t,
                         const float* q_t, float* p) {
  TORCH_CHECK(s.rank >= 1 && s.rank <= kMaxRank, "PowerSGD rank out of range");
  with_rank(s.rank, [&](auto rank) {
    constexpr int R = decltype(rank)::value;
    // Rows the step (1 or 2) starting at row i: every pointer moved to that row.
    auto rows_from = [&](int64_t i, auto step) {
      constexpr int N = decltype(step)::value;
      refresh_rows<R, N>(error + i * s.cols, grad ? grad + i * s.cols : nullptr, p_old ? p_old + i * s.rank : nullptr,
                         q_old_t, q_t, p ? p + i * s.rank : nullptr, s.cols, s.rank);
    };
    // Pairs of rows from row 0, so that which rows pair up does not depend on the threads.
    const int64_t pairs = (s.rows + 1) / 2;
    at::parallel_for(0, pairs, grain_for(2 * s.cols), [&](int64_t begin, int64_t end) {
      for (int64_t pair = begin; pair < end; ++pair) {
        const int64_t i = 2 * pair;
        if (i + 1 < s.rows)
          rows_from(i, std::integral_constant<int, 2>());
        else
          rows_from(i, std::integral_constant<int, 1>());
      }
    });
  });
}

void column_factors(LowRankShape s, const float* m, const float* p, float* q_t) {
  TORCH_CHECK(s.rank >= 1 && s.rank <= kMaxRank, "PowerSGD rank out of range");
  // Columns in blocks whose rank rows of Q stay in the first-level cache while every row of M
  // passes by once.
  constexpr int64_t kBlock = 1024;
  const int64_t blocks = (s.cols + kBlock - 1) / kBlock;
  with_rank(s.rank, [&](auto rank) {
    constexpr int R = decltype(rank)::value;
    at::parallel_for(0, blocks, grain_for(s.rows * kBlock), [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        const int64_t first = b * kBlock, width = std::min(kBlock, s.cols - first);
        for (int64_t k = 0; k < s.rank; ++k) std::fill_n(q_t + k * s.cols + first, width, 0.0f);
        add_column_block<R>(m, p, q_t, s.rows, s.cols, s.rank, first, width);
      }
    });
  });
}

}  // namespace histotrain
