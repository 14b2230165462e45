// sgemm_ukernel.h: the register-blocked micro-kernel, written once against simd.h and
// compiled per ISA (AVX-512: 14 x 32, AVX2: 6 x 16, generic: 4 x 8 scalar; gemm_config.h).
//
//   c (ROWS x n, row stride ldc) (=|+=) a (ROWS x kc) * b (kc x n)   then bias, ReLU
//
// a: packed A sliver, element (i, p) at a[p * MRS + i] (MRS = the packing's row count;
//    ROWS <= MRS rows are computed, so a partial row tile costs only its own rows).
// b: packed B sliver or B itself, element (p, j) at b[p * ldb + j]; ldb is NR when packed,
//    B's row stride when read in place. Columns j >= n are never stored (masked stores),
//    and are only read when b is a zero-padded packed sliver.
#pragma once
#include "lamina/common.h"
#include "lamina/cpu/gemm_config.h"
#include "lamina/cpu/simd.h"
#include "vmath.h"

namespace lamina::cpu::LAMINA_ISA_NS {

struct TileEpilogue {
  float beta;              // 0: overwrite C (never read); otherwise C = beta*C + AB
  const float* bias_row;   // bias for this tile's row 0, or null
  const float* bias_col;   // bias for this tile's column 0, or null
  bool relu;
};

template <int ROWS, int MRS, int NV>
void sgemm_ukernel(index_t kc, const float* __restrict a, const float* __restrict b, index_t ldb,
                   float* __restrict c, index_t ldc, int n, const TileEpilogue& ep) {
  using namespace simd;
  // Pull this tile of C towards L1 while the K loop runs (it is read or written at the end).
#pragma GCC unroll 16
  for (int i = 0; i < ROWS; ++i) {
    prefetch(c + i * ldc);
    prefetch(c + i * ldc + (NV * W - 1));
  }
  vf acc[ROWS][NV];
#pragma GCC unroll 16
  for (int i = 0; i < ROWS; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = zero();

#pragma GCC unroll 2
  for (index_t p = 0; p < kc; ++p) {
    vf bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = load(b + p * ldb + v * W);
#pragma GCC unroll 16
    for (int i = 0; i < ROWS; ++i) {
      vf av = set1(a[p * MRS + i]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = fma(av, bv[v], acc[i][v]);
    }
  }

  // Write-back with the epilogue, one pass, masked at the right edge.
  const bool has_beta = ep.beta != 0.0f;
  const vf vbeta = set1(ep.beta);
  const vf vzero = zero();
  vf bcol[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    int nv = n - v * W;
    bcol[v] = (ep.bias_col && nv > 0) ? load_mask(ep.bias_col + v * W, tail_mask(nv)) : vzero;
  }
#pragma GCC unroll 16
  for (int i = 0; i < ROWS; ++i) {
    float* crow = c + i * ldc;
    const vf brow = ep.bias_row ? set1(ep.bias_row[i]) : vzero;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      const int nv = n - v * W;
      if (nv <= 0) break;
      vf x = add(acc[i][v], add(brow, bcol[v]));
      if (nv >= W) {
        if (has_beta) x = fma(vbeta, load(crow + v * W), x);
        if (ep.relu) x = vmath::relu(x);
        store(crow + v * W, x);
      } else {
        const mask_t m = tail_mask(nv);
        if (has_beta) x = fma(vbeta, load_mask(crow + v * W, m), x);
        if (ep.relu) x = vmath::relu(x);
        store_mask(crow + v * W, m, x);
      }
    }
  }
}

}  // namespace lamina::cpu::LAMINA_ISA_NS
