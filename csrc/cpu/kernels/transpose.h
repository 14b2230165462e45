// transpose.h: 8 x 8 float transposes in AVX2 registers (also used under AVX-512), for the
// kernels that turn a row-major operand around (small-N GEMM's B, channels-in-lanes grad_y).
#pragma once
#include "lamina/common.h"
#include "lamina/cpu/simd.h"

#include <immintrin.h>

namespace lamina::cpu::LAMINA_ISA_NS {

#if LAMINA_ISA_ID >= 1
// The 8 x 8 transpose of r[0..7] (8 floats each) in registers: r[q] becomes column q.
inline void transpose8x8_regs(__m256 r[8]) {
  __m256 t[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  __m256 u[8];
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
}

// rows (<= 8) source rows of 8 floats in registers, the others zero.
inline void load_rows8(const float* src, index_t lds, int rows, __m256 r[8]) {
  for (int i = 0; i < 8; ++i) r[i] = i < rows ? _mm256_loadu_ps(src + i * lds) : _mm256_setzero_ps();
}

// dst[q * ldd + r] = src[r * lds + q] for r < rows (<= 8) source rows of 8 floats, writing all 8 floats of each output row
// (zeros at r >= rows), the rows in ascending q: with ldd < 8 a row's spill into the next
// one's start is overwritten by that row's own store. The caller owns dst[q * ldd + 0..7].
inline void transpose8xr_full(const float* src, index_t lds, int rows, float* dst, index_t ldd) {
  __m256 r[8];
  load_rows8(src, lds, rows, r);
  transpose8x8_regs(r);
  for (int q = 0; q < 8; ++q) _mm256_storeu_ps(dst + q * ldd, r[q]);
}

// The whole 8 x 8 block (AVX2 shuffles; also under AVX-512).
inline void transpose8x8(const float* src, index_t lds, float* dst, index_t ldd) {
  transpose8xr_full(src, lds, 8, dst, ldd);
}

// dst[q * ldd + r] = src[r * lds + q] for r < rows (<= 8) source rows of 8 floats: only the
// first `rows` floats of each output row are written.
inline void transpose8xr(const float* src, index_t lds, int rows, float* dst, index_t ldd) {
  if (rows == 8) {
    transpose8x8(src, lds, dst, ldd);
    return;
  }
  __m256 r[8];
  load_rows8(src, lds, rows, r);
  transpose8x8_regs(r);
#if LAMINA_ISA_ID >= 2
  const __mmask8 m = static_cast<__mmask8>((1u << rows) - 1);
  for (int q = 0; q < 8; ++q) _mm256_mask_storeu_ps(dst + q * ldd, m, r[q]);
#else
  const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(rows), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  for (int q = 0; q < 8; ++q) _mm256_maskstore_ps(dst + q * ldd, m, r[q]);
#endif
}
#endif

}  // namespace lamina::cpu::LAMINA_ISA_NS
