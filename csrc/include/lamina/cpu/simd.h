// simd.h: the few vector operations the per-ISA kernels need, for the ISA this translation
// unit is compiled for (LAMINA_ISA_ID: 0 generic scalar, 1 AVX2+FMA, 2 AVX-512F).
// Kernels written against this header are compiled once per ISA (csrc/cpu/kernels/).
// W is the number of float lanes; masks cover the first n < W lanes of a partial vector
// so edge tiles are loaded and stored without touching memory past the end.
#pragma once
#include <cmath>

#if !defined(LAMINA_ISA_ID)
#error "simd.h is for per-ISA kernel sources (LAMINA_ISA_ID must be defined)"
#endif

#if LAMINA_ISA_ID >= 1
#include <immintrin.h>
#endif

namespace lamina::cpu::LAMINA_ISA_NS::simd {

#if LAMINA_ISA_ID == 2
constexpr int W = 16;
using vf = __m512;
using mask_t = __mmask16;
inline vf zero() { return _mm512_setzero_ps(); }
inline vf set1(float x) { return _mm512_set1_ps(x); }
inline vf load(const float* p) { return _mm512_loadu_ps(p); }
inline void store(float* p, vf v) { _mm512_storeu_ps(p, v); }
inline mask_t tail_mask(int n) { return n >= 16 ? mask_t(0xFFFF) : mask_t((1u << n) - 1u); }
inline vf load_mask(const float* p, mask_t m) { return _mm512_maskz_loadu_ps(m, p); }
inline void store_mask(float* p, mask_t m, vf v) { _mm512_mask_storeu_ps(p, m, v); }
inline vf fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
inline vf add(vf a, vf b) { return _mm512_add_ps(a, b); }
inline vf sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
inline vf mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
inline vf max(vf a, vf b) { return _mm512_max_ps(a, b); }
inline vf min(vf a, vf b) { return _mm512_min_ps(a, b); }
inline float hsum(vf v) { return _mm512_reduce_add_ps(v); }
inline float hmax(vf v) { return _mm512_reduce_max_ps(v); }
inline void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }
#elif LAMINA_ISA_ID == 1
constexpr int W = 8;
using vf = __m256;
using mask_t = __m256i;
inline vf zero() { return _mm256_setzero_ps(); }
inline vf set1(float x) { return _mm256_set1_ps(x); }
inline vf load(const float* p) { return _mm256_loadu_ps(p); }
inline void store(float* p, vf v) { _mm256_storeu_ps(p, v); }
inline mask_t tail_mask(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline vf load_mask(const float* p, mask_t m) { return _mm256_maskload_ps(p, m); }
inline void store_mask(float* p, mask_t m, vf v) { _mm256_maskstore_ps(p, m, v); }
inline vf fma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
inline vf add(vf a, vf b) { return _mm256_add_ps(a, b); }
inline vf sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
inline vf mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
inline vf max(vf a, vf b) { return _mm256_max_ps(a, b); }
inline vf min(vf a, vf b) { return _mm256_min_ps(a, b); }
inline float hsum(vf v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline float hmax(vf v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }
#else
constexpr int W = 1;
using vf = float;
using mask_t = bool;
inline vf zero() { return 0.0f; }
inline vf set1(float x) { return x; }
inline vf load(const float* p) { return *p; }
inline void store(float* p, vf v) { *p = v; }
inline mask_t tail_mask(int n) { return n > 0; }
inline vf load_mask(const float* p, mask_t m) { return m ? *p : 0.0f; }
inline void store_mask(float* p, mask_t m, vf v) {
  if (m) *p = v;
}
inline vf fma(vf a, vf b, vf c) { return a * b + c; }
inline vf add(vf a, vf b) { return a + b; }
inline vf sub(vf a, vf b) { return a - b; }
inline vf mul(vf a, vf b) { return a * b; }
// NaN-propagating like the SIMD max with the NaN in the second operand position? No: like
// maxps, returns b when either is NaN. Kept identical so every path agrees bit for bit.
inline vf max(vf a, vf b) { return a > b ? a : b; }
inline vf min(vf a, vf b) { return a < b ? a : b; }
inline float hsum(vf v) { return v; }
inline float hmax(vf v) { return v; }
inline void prefetch(const void*) {}
#endif

}  // namespace lamina::cpu::LAMINA_ISA_NS::simd
