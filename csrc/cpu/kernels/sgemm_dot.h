// sgemm_dot.h: the small-N path of the GEMM (N below half a register tile, e.g. a 10-class
// output layer), where a 32-wide register tile would waste most of its lanes.
//
//   C (M x N) = beta*C + A (M x K) * Bt^T   with Bt (N x K): each C element is a dot product
//   of two rows that are contiguous along K, vectorised along K and reduced at the end.
//
// Rows of A and Bt must be unit-stride along K; the caller packs them when they are not
// (Bt is N x K floats, tiny here; A is packed RB rows at a time).
//
// Two vector widths (x86 paths only): V512 (zmm) and V256 (ymm; the AVX2 path's only width,
// and the AVX-512 path's choice where 512-bit operations issue as two 256-bit halves, Zen 4:
// the FMA throughput is the same, the masked K tail is half as long and the final
// reduction is one fold shorter; tuning.h dot_width). Four accumulators of one row are
// reduced together into the four outputs they make (reduce4: 3 horizontal adds and a fold,
// instead of four separate horizontal sums) before the epilogue.
#pragma once
#include "lamina/gemm.h"
#include "lamina/cpu/simd.h"
#include "vmath.h"

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

// {hsum(a0), hsum(a1), hsum(a2), hsum(a3)} of four 8-lane sums.
inline __m128 reduce4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
  const __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
  return _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
}

// The epilogue on n (1..4) outputs of one row at c; `x` holds their sums in its first lanes.
inline void store_outputs(__m128 x, float* c, int n, const GemmEpilogue& ep, index_t row,
                          index_t col) {
  alignas(16) float v[4];
  _mm_store_ps(v, x);
  for (int j = 0; j < n; ++j) {
    float y = v[j];
    if (ep.beta != 0.0f) y += ep.beta * c[j];
    if (ep.bias_mode == Bias::per_row) y += ep.bias[row];
    if (ep.bias_mode == Bias::per_col) y += ep.bias[col + j];
    if (ep.relu) y = vmath::relu(y);
    c[j] = y;
  }
}

// RB rows of A x CB (<= 5) rows of Bt -> an RB x CB block of C.
template <class V, int RB, int CB>
inline void dot_block(index_t K, const float* const* a, const float* bt, index_t ldb, float* c,
                      index_t ldc, const GemmEpilogue& ep, index_t row0, index_t col0) {
  using vf = typename V::vf;
  constexpr int W = V::W;
  vf acc[RB][CB];
#pragma GCC unroll 4
  for (int i = 0; i < RB; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < CB; ++j) acc[i][j] = V::zero();
  index_t k = 0;
  for (; k + W <= K; k += W) {
    vf av[RB];
#pragma GCC unroll 4
    for (int i = 0; i < RB; ++i) av[i] = V::load(a[i] + k);
#pragma GCC unroll 4
    for (int j = 0; j < CB; ++j) {
      const vf bv = V::load(bt + j * ldb + k);
#pragma GCC unroll 4
      for (int i = 0; i < RB; ++i) acc[i][j] = V::fma(av[i], bv, acc[i][j]);
    }
  }
  if (k < K) {
    const auto m = V::tail_mask(static_cast<int>(K - k));
    vf av[RB];
#pragma GCC unroll 4
    for (int i = 0; i < RB; ++i) av[i] = V::load_mask(a[i] + k, m);
#pragma GCC unroll 4
    for (int j = 0; j < CB; ++j) {
      const vf bv = V::load_mask(bt + j * ldb + k, m);
#pragma GCC unroll 4
      for (int i = 0; i < RB; ++i) acc[i][j] = V::fma(av[i], bv, acc[i][j]);
    }
  }
  const __m256 z = _mm256_setzero_ps();
  auto col = [&](int i, int j) { return j < CB ? V::to256(acc[i][j < CB ? j : 0]) : z; };
#pragma GCC unroll 4
  for (int i = 0; i < RB; ++i) {
    store_outputs(reduce4(col(i, 0), col(i, 1), col(i, 2), col(i, 3)), c + i * ldc, CB < 4 ? CB : 4,
                  ep, row0 + i, col0);
    if constexpr (CB > 4)
      store_outputs(reduce4(col(i, 4), z, z, z), c + i * ldc + 4, CB - 4, ep, row0 + i, col0 + 4);
  }
}

template <class V, int RB>
inline void dot_rows(index_t K, index_t N, const float* const* a, const float* bt, float* c,
                     index_t ldc, const GemmEpilogue& ep, index_t row0) {
  index_t j = 0;
  // Five columns per block when they divide N (N = 10: 2 blocks, 9 loads per 20 FMAs),
  // else four (8 loads per 16).
  if (N % 5 == 0)
    for (; j + 5 <= N; j += 5) dot_block<V, RB, 5>(K, a, bt + j * K, K, c + j, ldc, ep, row0, j);
  for (; j + 4 <= N; j += 4) dot_block<V, RB, 4>(K, a, bt + j * K, K, c + j, ldc, ep, row0, j);
  switch (N - j) {
    case 3: dot_block<V, RB, 3>(K, a, bt + j * K, K, c + j, ldc, ep, row0, j); break;
    case 2: dot_block<V, RB, 2>(K, a, bt + j * K, K, c + j, ldc, ep, row0, j); break;
    case 1: dot_block<V, RB, 1>(K, a, bt + j * K, K, c + j, ldc, ep, row0, j); break;
    default: break;
  }
}

}  // namespace lamina::cpu::LAMINA_ISA_NS
#endif
