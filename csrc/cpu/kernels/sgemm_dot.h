// sgemm_dot.h: the small-N path of the GEMM (N below half a register tile, e.g. a 10-class
// output layer), where a 32-wide register tile would waste most of its lanes.
//
//   C (M x N) = beta*C + A (M x K) * Bt^T   with Bt (N x K): each C element is a dot product
//   of two rows that are contiguous along K, vectorised along K and reduced at the end.
//
// Rows of A and Bt must be unit-stride along K; the caller packs them when they are not
// (Bt is N x K floats, tiny here; A is packed RB rows at a time).
//
// Two vector widths (x86 paths only): V512 (zmm, the AVX-512 path's default) and V256 (ymm;
// the AVX2 path's only width, and selectable on AVX-512 through tuning.h's dot_width: the
// masked K tail is half as long and the final reduction one fold shorter, but on every CPU
// measured 512 won). A block is up to 4 rows x 5 columns of outputs (dot_rows); the sums of
// each 2 x 4 part are reduced together (reduce8) and the epilogue runs on 8 sums at once.
#pragma once
#include "lamina/gemm.h"
#include "lamina/cpu/simd.h"
#include "vmath.h"

#include <cmath>

#if LAMINA_ISA_ID >= 1
namespace lamina::cpu::LAMINA_ISA_NS {

struct V256 {
  static constexpr int W = 8;
  using vf = __m256;
  using mask_t = __m256i;
  static vf zero() { return _mm256_setzero_ps(); }
  static vf load(const float* p) { return _mm256_loadu_ps(p); }
  static mask_t tail_mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static vf load_mask(const float* p, mask_t m) { return _mm256_maskload_ps(p, m); }
  static vf fma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
  static __m256 to256(vf v) { return v; }
};

#if LAMINA_ISA_ID == 2
struct V512 {
  static constexpr int W = 16;
  using vf = __m512;
  using mask_t = __mmask16;
  static vf zero() { return _mm512_setzero_ps(); }
  static vf load(const float* p) { return _mm512_loadu_ps(p); }
  static mask_t tail_mask(int n) { return n >= 16 ? mask_t(0xFFFF) : mask_t((1u << n) - 1u); }
  static vf load_mask(const float* p, mask_t m) { return _mm512_maskz_loadu_ps(m, p); }
  static vf fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
  static __m256 to256(vf v) {
    return _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  }
};
#endif

// {hsum(a0), ..., hsum(a7)} of eight 8-lane sums: 6 horizontal adds, 2 lane permutes, 1 add
// (eight separate horizontal sums would take 40 operations).
inline __m256 reduce8(__m256 a0, __m256 a1, __m256 a2, __m256 a3, __m256 a4, __m256 a5, __m256 a6,
                      __m256 a7) {
  const __m256 lo = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));  // a0..a3 by halves
  const __m256 hi = _mm256_hadd_ps(_mm256_hadd_ps(a4, a5), _mm256_hadd_ps(a6, a7));  // a4..a7 by halves
  return _mm256_add_ps(_mm256_permute2f128_ps(lo, hi, 0x20), _mm256_permute2f128_ps(lo, hi, 0x31));
}

// One output C(row, col) at c from its dot product `sum`: the epilogue's arithmetic in the
// micro-kernel's write-back order (sum + bias, then beta * C, then ReLU).
inline void store_one(float sum, float* c, const GemmEpilogue& ep, index_t row, index_t col) {
  float bias = 0.0f;
  if (ep.bias_mode == Bias::per_row) bias = ep.bias[row];
  if (ep.bias_mode == Bias::per_col) bias = ep.bias[col];
  float y = sum + bias;
  if (ep.beta != 0.0f) y = std::fma(ep.beta, *c, y);
  if (ep.relu) y = vmath::relu(y);
  *c = y;
}

// The epilogue on the outputs of rows (row, row + 1) and columns [col, col + n) (n <= 4):
// lanes 0..3 of x hold row `row`, lanes 4..7 row `row + 1` (absent when !two). The same
// arithmetic, in the same order, as the micro-kernel's write-back: sum + (bias_row +
// bias_col), then beta * C, then ReLU.
inline void store_pair(__m256 x, float* c0, float* c1, bool two, int n, const GemmEpilogue& ep,
                       index_t row, index_t col) {
  alignas(32) float v[8];
  if (n == 4) {
    __m256 bias = _mm256_setzero_ps();
    if (ep.bias_mode == Bias::per_row)
      bias = _mm256_setr_m128(_mm_set1_ps(ep.bias[row]), _mm_set1_ps(two ? ep.bias[row + 1] : 0.0f));
    if (ep.bias_mode == Bias::per_col) bias = _mm256_broadcast_ps(reinterpret_cast<const __m128*>(ep.bias + col));
    x = _mm256_add_ps(x, bias);
    if (ep.beta != 0.0f) {
      const __m256 cv = _mm256_setr_m128(_mm_loadu_ps(c0), two ? _mm_loadu_ps(c1) : _mm_setzero_ps());
      x = _mm256_fmadd_ps(_mm256_set1_ps(ep.beta), cv, x);
    }
    if (ep.relu) x = _mm256_max_ps(_mm256_setzero_ps(), x);  // vmath::relu's lane arithmetic
    _mm_storeu_ps(c0, _mm256_castps256_ps128(x));
    if (two) _mm_storeu_ps(c1, _mm256_extractf128_ps(x, 1));
    return;
  }
  _mm256_store_ps(v, x);  // a ragged right edge: scalar, with the same arithmetic
  for (int r = 0; r < (two ? 2 : 1); ++r)
    for (int j = 0; j < n; ++j) store_one(v[4 * r + j], (r ? c1 : c0) + j, ep, row + r, col + j);
}

// RB (<= 4) rows of A x CB (<= 5) rows of Bt -> an RB x CB block of C.
template <class V, int RB, int CB>
inline void dot_block(index_t K, const float* const* a, const float* bt, index_t ldb, float* c,
                      index_t ldc, const GemmEpilogue& ep, index_t row0, index_t col0) {
  using vf = typename V::vf;
  constexpr int W = V::W;
  vf acc[RB][CB];
#pragma GCC unroll 8
  for (int i = 0; i < RB; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < CB; ++j) acc[i][j] = V::zero();
  index_t k = 0;
  for (; k + W <= K; k += W) {
    vf av[RB];
#pragma GCC unroll 8
    for (int i = 0; i < RB; ++i) av[i] = V::load(a[i] + k);
#pragma GCC unroll 8
    for (int j = 0; j < CB; ++j) {
      const vf bv = V::load(bt + j * ldb + k);
#pragma GCC unroll 8
      for (int i = 0; i < RB; ++i) acc[i][j] = V::fma(av[i], bv, acc[i][j]);
    }
  }
  if (k < K) {
    const auto m = V::tail_mask(static_cast<int>(K - k));
    vf av[RB];
#pragma GCC unroll 8
    for (int i = 0; i < RB; ++i) av[i] = V::load_mask(a[i] + k, m);
#pragma GCC unroll 8
    for (int j = 0; j < CB; ++j) {
      const vf bv = V::load_mask(bt + j * ldb + k, m);
#pragma GCC unroll 8
      for (int i = 0; i < RB; ++i) acc[i][j] = V::fma(av[i], bv, acc[i][j]);
    }
  }
  const __m256 z = _mm256_setzero_ps();
  auto at = [&](int i, int j) { return i < RB && j < CB ? V::to256(acc[i < RB ? i : 0][j < CB ? j : 0]) : z; };
#pragma GCC unroll 2
  for (int i = 0; i < RB; i += 2) {
    const __m256 sums = reduce8(at(i, 0), at(i, 1), at(i, 2), at(i, 3), at(i + 1, 0), at(i + 1, 1),
                                at(i + 1, 2), at(i + 1, 3));
    store_pair(sums, c + i * ldc, c + (i + 1) * ldc, i + 1 < RB, CB < 4 ? CB : 4, ep, row0 + i, col0);
  }
  if constexpr (CB == 5) {  // the fifth column of up to 4 rows: one more reduce8, lanes = rows
    alignas(32) float v[8];
    _mm256_store_ps(v, reduce8(at(0, 4), at(1, 4), at(2, 4), at(3, 4), z, z, z, z));
    for (int i = 0; i < RB; ++i) store_one(v[i], c + i * ldc + 4, ep, row0 + i, col0 + 4);
  }
}

// bt: N rows of K floats, row stride ldb. Columns go in blocks of up to 5, as few blocks as
// that allows and as even as possible (N = 10: 5 + 5, not 4 + 4 + 2): every block reloads the
// RB rows of A (of which most loads split over two cache lines, their rows starting anywhere),
// so a block of 2 columns costs nearly what one of 4 or 5 does.
template <class V, int RB>
inline void dot_rows(index_t K, index_t N, const float* const* a, const float* bt, index_t ldb, float* c,
                     index_t ldc, const GemmEpilogue& ep, index_t row0) {
  const index_t blocks = ceil_div(N, index_t(5));
  for (index_t b = 0, j = 0; b < blocks; ++b) {
    const index_t cb = ceil_div(N - j, blocks - b);
    const float* btj = bt + j * ldb;
    switch (cb) {
      case 5: dot_block<V, RB, 5>(K, a, btj, ldb, c + j, ldc, ep, row0, j); break;
      case 4: dot_block<V, RB, 4>(K, a, btj, ldb, c + j, ldc, ep, row0, j); break;
      case 3: dot_block<V, RB, 3>(K, a, btj, ldb, c + j, ldc, ep, row0, j); break;
      case 2: dot_block<V, RB, 2>(K, a, btj, ldb, c + j, ldc, ep, row0, j); break;
      default: dot_block<V, RB, 1>(K, a, btj, ldb, c + j, ldc, ep, row0, j); break;
    }
    j += cb;
  }
}

}  // namespace lamina::cpu::LAMINA_ISA_NS
#endif
