// transpose.h: 8 x 8 float transposes in AVX2 registers (also used under AVX-512), for the
// kernels that turn a row-major operand around (small-N GEMM's B, channels-in-lanes grad_y).
#pragma once
#include "lamina/common.h"
#include "lamina/cpu/simd.h"

#include <immintrin.h>

namespace lamina::cpu::LAMINA_ISA_NS {

#if LAMINA_ISA_ID >= 1
// dst[q * ldd + r] = src[r * lds + q] for an 8 x 8 block (AVX2 shuffles; also under AVX-512).
inline void transpose8x8(const float* src, index_t lds, float* dst, index_t ldd) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * lds);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_ps(dst + i * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
}

// dst[q * ldd + r] = src[r * lds + q] for r < rows (<= 8) source rows of 8 floats: only the
// first `rows` floats of each output row are written.
inline void transpose8xr(const float* src, index_t lds, int rows, float* dst, index_t ldd) {
  if (rows == 8) {
    transpose8x8(src, lds, dst, ldd);
    return;
  }
  alignas(32) float tmp[8 * 8] = {};
  for (int r = 0; r < rows; ++r) _mm256_store_ps(tmp + 8 * r, _mm256_loadu_ps(src + r * lds));
  alignas(32) float t2[8 * 8];
  transpose8x8(tmp, 8, t2, 8);
  const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(rows), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  for (int q = 0; q < 8; ++q) _mm256_maskstore_ps(dst + q * ldd, mask, _mm256_load_ps(t2 + 8 * q));
}
#endif

}  // namespace lamina::cpu::LAMINA_ISA_NS
