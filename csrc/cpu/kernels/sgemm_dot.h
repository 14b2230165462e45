// sgemm_dot.h: the small-N path of the GEMM (N below half a register tile, e.g. a 10-class
// output layer), where a 32-wide register tile would waste most of its lanes.
//
//   C (M x N) = beta*C + A (M x K) * Bt^T   with Bt (N x K): each C element is a dot product
//   of two rows that are contiguous along K, vectorised along K and reduced at the end.
//
// Rows of A and Bt must be unit-stride along K; the caller packs them when they are not
// (Bt is N x K floats, tiny here; A is packed RB rows at a time).
#pragma once
#include "lamina/gemm.h"
#include "lamina/cpu/simd.h"
#include "vmath.h"

namespace lamina::cpu::LAMINA_ISA_NS {

// RB rows of A x CB rows of Bt -> an RB x CB block of C.
template <int RB, int CB>
inline void dot_block(index_t K, const float* const* a, index_t lda, const float* bt, index_t ldb,
                      float* c, index_t ldc, const GemmEpilogue& ep, index_t row0, index_t col0) {
  using namespace simd;
  vf acc[RB][CB];
#pragma GCC unroll 4
  for (int i = 0; i < RB; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < CB; ++j) acc[i][j] = zero();
  (void)lda;
  index_t k = 0;
  for (; k + W <= K; k += W) {
    vf av[RB];
#pragma GCC unroll 4
    for (int i = 0; i < RB; ++i) av[i] = load(a[i] + k);
#pragma GCC unroll 4
    for (int j = 0; j < CB; ++j) {
      const vf bv = load(bt + j * ldb + k);
#pragma GCC unroll 4
      for (int i = 0; i < RB; ++i) acc[i][j] = fma(av[i], bv, acc[i][j]);
    }
  }
  if (k < K) {
    const mask_t m = tail_mask(static_cast<int>(K - k));
    vf av[RB];
#pragma GCC unroll 4
    for (int i = 0; i < RB; ++i) av[i] = load_mask(a[i] + k, m);
#pragma GCC unroll 4
    for (int j = 0; j < CB; ++j) {
      const vf bv = load_mask(bt + j * ldb + k, m);
#pragma GCC unroll 4
      for (int i = 0; i < RB; ++i) acc[i][j] = fma(av[i], bv, acc[i][j]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < RB; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < CB; ++j) {
      float* cp = c + i * ldc + j;
      float x = hsum(acc[i][j]);
      if (ep.beta != 0.0f) x += ep.beta * *cp;
      if (ep.bias_mode == Bias::per_row) x += ep.bias[row0 + i];
      if (ep.bias_mode == Bias::per_col) x += ep.bias[col0 + j];
      if (ep.relu) x = vmath::relu(x);
      *cp = x;
    }
}

template <int RB>
inline void dot_rows(index_t K, index_t N, const float* const* a, const float* bt, float* c,
                     index_t ldc, const GemmEpilogue& ep, index_t row0) {
  index_t j = 0;
  for (; j + 4 <= N; j += 4) dot_block<RB, 4>(K, a, 0, bt + j * K, K, c + j, ldc, ep, row0, j);
  switch (N - j) {
    case 3: dot_block<RB, 3>(K, a, 0, bt + j * K, K, c + j, ldc, ep, row0, j); break;
    case 2: dot_block<RB, 2>(K, a, 0, bt + j * K, K, c + j, ldc, ep, row0, j); break;
    case 1: dot_block<RB, 1>(K, a, 0, bt + j * K, K, c + j, ldc, ep, row0, j); break;
    default: break;
  }
}

}  // namespace lamina::cpu::LAMINA_ISA_NS
