// vmath.h: vectorised exp, log, tanh and sigmoid for float32, compiled per ISA on top of
// simd.h (scalar / AVX2+FMA / AVX-512F), plus the few lane operations they need that simd.h
// does not carry (compare, select, divide, integer bit tricks).
//
// Accuracy (measured against float64 NumPy over dense grids on every ISA path, and asserted by
// tests/test_activation.py; relative error |f - ref| / |ref| in units of 2^-23):
//   exp      normal results (x in [-87.3, 88.72]): < 0.7 ulp; x > 88.72 -> inf, x < -103.9
//            -> 0, denormal results within 0.75 of the smallest denormal (rounded once).
//            exp_nonpos (x <= 0 only; softmax, sigmoid, tanh use it): the same.
//   log      every x > 0, denormals included: < 0.7 ulp; log(0) = -inf, log(x < 0) = NaN,
//            log(inf) = inf.
//   tanh     all x: < 1.3 ulp; |x| > 9.01 gives exactly +-1; tanh(+-0) = +-0.
//   sigmoid  normal results: < 1.7 ulp; denormal results (x < -87.3) within 0.75 of the
//            smallest denormal; sigmoid(x > 16.7) = 1, sigmoid(-inf) = 0.
// NaN in gives NaN out for all four. No -ffast-math: this relies on IEEE inf/NaN.
//
// exp: n = round(x / ln2), r = x - n ln2 (two-constant Cody-Waite split, so r is exact to
// float precision), e^r by the Cephes degree-7 minimax form 1 + r + r^2 P(r), and 2^n applied
// as 2^(n/2) * 2^(n - n/2) so results near overflow and in the denormal range are built from
// normal powers of two and rounded once.
// log: x = m 2^e with m in [sqrt(1/2), sqrt(2)), log(x) = e ln2 + log1p(m - 1) by the Cephes
// polynomial, e ln2 added in two parts (the same split constants as exp).
// tanh: |x| < 0.625 by the Cephes odd polynomial (no cancellation near 0); otherwise
// (1 - e) / (1 + e), e = e^{-2|x|}, with the sign restored.
// sigmoid: e = e^{-|x|}; 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0, so neither tail
// cancels or overflows.
#pragma once
#include <cstdint>
#include <cstring>

#include "lamina/cpu/simd.h"

namespace lamina::cpu::LAMINA_ISA_NS::vmath {

using namespace simd;

// ---- lane operations beyond simd.h ----------------------------------------------------
#if LAMINA_ISA_ID == 2
using vi = __m512i;
using cmask = __mmask16;
inline vf div(vf a, vf b) { return _mm512_div_ps(a, b); }
inline cmask gt(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
inline cmask lt(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
inline cmask ge(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
inline cmask eq(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
inline cmask isnan(vf a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
inline cmask mor(cmask a, cmask b) { return a | b; }
inline cmask mand(cmask a, cmask b) { return a & b; }
inline cmask mnot(cmask a) { return static_cast<cmask>(~a); }
inline vf select(cmask m, vf a, vf b) { return _mm512_mask_blend_ps(m, b, a); }  // m ? a : b
inline vi as_int(vf a) { return _mm512_castps_si512(a); }
inline vf as_float(vi a) { return _mm512_castsi512_ps(a); }
inline vi iadd(vi a, vi b) { return _mm512_add_epi32(a, b); }
inline vi isub(vi a, vi b) { return _mm512_sub_epi32(a, b); }
inline vi iset1(std::int32_t x) { return _mm512_set1_epi32(x); }
inline vi iand(vi a, vi b) { return _mm512_and_si512(a, b); }
inline vi ior(vi a, vi b) { return _mm512_or_si512(a, b); }
template <int S> inline vi shl(vi a) { return _mm512_slli_epi32(a, S); }
template <int S> inline vi sra(vi a) { return _mm512_srai_epi32(a, S); }
template <int S> inline vi srl(vi a) { return _mm512_srli_epi32(a, S); }
inline vf itof(vi a) { return _mm512_cvtepi32_ps(a); }
inline vf abs(vf a) { return _mm512_abs_ps(a); }
inline vf vand(vf a, vf b) { return _mm512_and_ps(a, b); }
inline vf vxor(vf a, vf b) { return _mm512_xor_ps(a, b); }
// The first lanes selected by a tail mask from p, the others `fill` (memory past them untouched).
inline vf load_or(const float* p, mask_t m, vf fill) { return _mm512_mask_loadu_ps(fill, m, p); }
// The lanes of a tail mask as a select mask.
inline cmask as_cmask(mask_t m) { return m; }
inline float first_lane(vf a) { return _mm512_cvtss_f32(a); }
#elif LAMINA_ISA_ID == 1
using vi = __m256i;
using cmask = __m256;
inline vf div(vf a, vf b) { return _mm256_div_ps(a, b); }
inline cmask gt(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
inline cmask lt(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
inline cmask ge(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
inline cmask eq(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
inline cmask isnan(vf a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
inline cmask mor(cmask a, cmask b) { return _mm256_or_ps(a, b); }
inline cmask mand(cmask a, cmask b) { return _mm256_and_ps(a, b); }
inline cmask mnot(cmask a) { return _mm256_xor_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(-1))); }
inline vf select(cmask m, vf a, vf b) { return _mm256_blendv_ps(b, a, m); }
inline vi as_int(vf a) { return _mm256_castps_si256(a); }
inline vf as_float(vi a) { return _mm256_castsi256_ps(a); }
inline vi iadd(vi a, vi b) { return _mm256_add_epi32(a, b); }
inline vi isub(vi a, vi b) { return _mm256_sub_epi32(a, b); }
inline vi iset1(std::int32_t x) { return _mm256_set1_epi32(x); }
inline vi iand(vi a, vi b) { return _mm256_and_si256(a, b); }
inline vi ior(vi a, vi b) { return _mm256_or_si256(a, b); }
template <int S> inline vi shl(vi a) { return _mm256_slli_epi32(a, S); }
template <int S> inline vi sra(vi a) { return _mm256_srai_epi32(a, S); }
template <int S> inline vi srl(vi a) { return _mm256_srli_epi32(a, S); }
inline vf itof(vi a) { return _mm256_cvtepi32_ps(a); }
inline vf abs(vf a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
inline vf vand(vf a, vf b) { return _mm256_and_ps(a, b); }
inline vf vxor(vf a, vf b) { return _mm256_xor_ps(a, b); }
inline vf load_or(const float* p, mask_t m, vf fill) {
  return _mm256_blendv_ps(fill, _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
}
inline cmask as_cmask(mask_t m) { return _mm256_castsi256_ps(m); }
inline float first_lane(vf a) { return _mm256_cvtss_f32(a); }
#else
// Scalar lanes. Integer work is done in uint32 so wrap-around on garbage (NaN) bit patterns
// is defined behaviour (the sanitizer build runs this path).
using vi = std::uint32_t;
using cmask = bool;
inline vf div(vf a, vf b) { return a / b; }
inline cmask gt(vf a, vf b) { return a > b; }
inline cmask lt(vf a, vf b) { return a < b; }
inline cmask ge(vf a, vf b) { return a >= b; }
inline cmask eq(vf a, vf b) { return a == b; }
inline cmask isnan(vf a) { return a != a; }
inline cmask mor(cmask a, cmask b) { return a || b; }
inline cmask mand(cmask a, cmask b) { return a && b; }
inline cmask mnot(cmask a) { return !a; }
inline vf select(cmask m, vf a, vf b) { return m ? a : b; }
inline vi as_int(vf a) {
  vi r;
  std::memcpy(&r, &a, 4);
  return r;
}
inline vf as_float(vi a) {
  vf r;
  std::memcpy(&r, &a, 4);
  return r;
}
inline vi iadd(vi a, vi b) { return a + b; }
inline vi isub(vi a, vi b) { return a - b; }
inline vi iset1(std::int32_t x) { return static_cast<vi>(x); }
inline vi iand(vi a, vi b) { return a & b; }
inline vi ior(vi a, vi b) { return a | b; }
template <int S> inline vi shl(vi a) { return a << S; }
// Arithmetic shift done on unsigned bits: sign-fill explicitly.
template <int S> inline vi sra(vi a) {
  return (a >> S) | ((a & 0x80000000u) ? ~(~vi(0) >> S) : vi(0));
}
template <int S> inline vi srl(vi a) { return a >> S; }
inline vf itof(vi a) { return static_cast<float>(static_cast<std::int32_t>(a)); }
inline vf abs(vf a) { return as_float(as_int(a) & 0x7FFFFFFFu); }
inline vf vand(vf a, vf b) { return as_float(as_int(a) & as_int(b)); }
inline vf vxor(vf a, vf b) { return as_float(as_int(a) ^ as_int(b)); }
inline vf load_or(const float* p, mask_t m, vf fill) { return m ? *p : fill; }
inline cmask as_cmask(mask_t m) { return m; }
inline float first_lane(vf a) { return a; }
#endif

// ---- relu --------------------------------------------------------------------------------
// The library's one ReLU: the activation kernel and both GEMM write-backs (the micro-kernel's
// tiles, and the scalar dot-product / K == 0 paths) call it, so every path agrees bit for
// bit. max(0, x) returns its second operand when either is NaN (maxps; simd.h's scalar max
// copies that), so NaN propagates as in torch.relu, and -0 stays -0.
inline vf relu(vf x) { return max(zero(), x); }
#if LAMINA_ISA_ID != 0
// One float through the same lane arithmetic (on the generic path vf is float already).
inline float relu(float x) { return first_lane(relu(set1(x))); }
#endif

// 2^k for integer lanes k in [-126, 127] (a normal power of two, built from its exponent).
inline vf pow2i(vi k) { return as_float(shl<23>(iadd(k, iset1(127)))); }

// ---- exp ---------------------------------------------------------------------------------
inline vf exp(vf x) {
  // Clamp (NaN stays NaN: the NaN operand is second, as max/min return the second then).
  // Beyond 88.8 the result overflows to inf; below -104 it underflows to 0.
  x = min(set1(88.8f), max(set1(-104.0f), x));
  // t = x / ln2 + 1.5 * 2^23: its low mantissa bits are round(x / ln2) as an integer.
  const vf magic = set1(12582912.0f);
  vf t = fma(x, set1(1.44269504088896341f), magic);
  vf n = sub(t, magic);
  vi ni = isub(as_int(t), as_int(magic));  // n in [-150, 128]
  vf r = fma(n, set1(-0.693359375f), x);  // Cody-Waite: ln2 = 0.693359375 - 2.12194440e-4
  r = fma(n, set1(2.12194440e-4f), r);
  vf r2 = mul(r, r);
  vf p = set1(1.9875691500e-4f);
  p = fma(p, r, set1(1.3981999507e-3f));
  p = fma(p, r, set1(8.3334519073e-3f));
  p = fma(p, r, set1(4.1665795894e-2f));
  p = fma(p, r, set1(1.6666665459e-1f));
  p = fma(p, r, set1(5.0000001201e-1f));
  vf y = add(fma(p, r2, r), set1(1.0f));
  // 2^n = 2^n1 * 2^n2 with n1 = floor(n / 2), n2 = n - n1, both in [-75, 64].
  vi n1 = sra<1>(ni);
  vi n2 = isub(ni, n1);
  return mul(mul(y, pow2i(n1)), pow2i(n2));
}

// exp for x <= 0 (or NaN), as needed by softmax (x - max), sigmoid (-|x|) and tanh (-2|x|):
// the same reduction and polynomial, but results are at most 1, so 2^n needs one scaling:
// y * 2^(n + 126) is normal for n in [-150, 0] and the final * 2^-126 rounds once into the
// denormal range. Five lane operations fewer than exp(). Accuracy as exp's.
inline vf exp_nonpos(vf x) {
  x = max(set1(-104.0f), x);  // NaN stays NaN
  const vf magic = set1(12582912.0f);
  vf t = fma(x, set1(1.44269504088896341f), magic);
  vf n = sub(t, magic);
  vf r = fma(n, set1(-0.693359375f), x);
  r = fma(n, set1(2.12194440e-4f), r);
  vf r2 = mul(r, r);
  vf p = set1(1.9875691500e-4f);
  p = fma(p, r, set1(1.3981999507e-3f));
  p = fma(p, r, set1(8.3334519073e-3f));
  p = fma(p, r, set1(4.1665795894e-2f));
  p = fma(p, r, set1(1.6666665459e-1f));
  p = fma(p, r, set1(5.0000001201e-1f));
  vf y = add(fma(p, r2, r), set1(1.0f));
  // exponent field of 2^(n + 126) = n + 253 = bits(t) - bits(magic) + 253
  vi e = iadd(as_int(t), iset1(253 - 0x4B400000));
  return mul(mul(y, as_float(shl<23>(e))), set1(1.17549435e-38f));  // * 2^-126
}

// ---- log ---------------------------------------------------------------------------------
inline vf log(vf x) {
  // Denormals: scale by 2^23 first so the exponent field is meaningful.
  cmask tiny = lt(x, set1(1.17549435e-38f));
  vf xs = select(tiny, mul(x, set1(8388608.0f)), x);
  vi bits = as_int(xs);
  // exponent e with m in [0.5, 1): x = m * 2^e
  vi e = isub(srl<23>(iand(bits, iset1(0x7F800000))), iset1(126));
  vf m = as_float(ior(iand(bits, iset1(0x007FFFFF)), iset1(0x3F000000)));
  vf ef = sub(itof(e), select(tiny, set1(23.0f), zero()));
  // m < sqrt(1/2): use 2m - 1 and e - 1, so the polynomial argument stays in [-0.29, 0.41].
  cmask small = lt(m, set1(0.707106781186547524f));
  vf f = select(small, sub(add(m, m), set1(1.0f)), sub(m, set1(1.0f)));
  ef = select(small, sub(ef, set1(1.0f)), ef);
  vf z = mul(f, f);
  vf p = set1(7.0376836292e-2f);
  p = fma(p, f, set1(-1.1514610310e-1f));
  p = fma(p, f, set1(1.1676998740e-1f));
  p = fma(p, f, set1(-1.2420140846e-1f));
  p = fma(p, f, set1(1.4249322787e-1f));
  p = fma(p, f, set1(-1.6668057665e-1f));
  p = fma(p, f, set1(2.0000714765e-1f));
  p = fma(p, f, set1(-2.4999993993e-1f));
  p = fma(p, f, set1(3.3333331174e-1f));
  vf y = mul(mul(p, f), z);
  y = fma(ef, set1(-2.12194440e-4f), y);
  y = fma(z, set1(-0.5f), y);
  vf r = add(f, y);
  r = fma(ef, set1(0.693359375f), r);
  // Special values: log(0) = -inf, log(<0) = NaN, log(inf) = inf, NaN -> NaN.
  const vf inf = set1(__builtin_huge_valf());
  r = select(eq(x, inf), inf, r);
  r = select(eq(x, zero()), set1(-__builtin_huge_valf()), r);
  r = select(lt(x, zero()), set1(__builtin_nanf("")), r);
  return select(isnan(x), x, r);
}

// ---- tanh --------------------------------------------------------------------------------
inline vf tanh(vf x) {
  vf ax = abs(x);
  vf sign = vxor(x, ax);  // just the sign bit of x
  // Small |x|: odd polynomial x + x^3 P(x^2) (Cephes tanhf), exact sign and tanh(0) = 0.
  vf z = mul(x, x);
  vf p = set1(-5.70498872745e-3f);
  p = fma(p, z, set1(2.06390887954e-2f));
  p = fma(p, z, set1(-5.37397155531e-2f));
  p = fma(p, z, set1(1.33314422036e-1f));
  p = fma(p, z, set1(-3.33332819422e-1f));
  vf small = vxor(fma(mul(p, z), ax, ax), sign);  // sign applied last: tanh(-0) = -0
  // Large |x|: (1 - e) / (1 + e) with e = e^{-2|x|} <= e^{-1.25}: no overflow, and e
  // underflows to 0 for large |x|, giving exactly 1.
  vf e = exp_nonpos(sub(zero(), add(ax, ax)));
  vf big = div(sub(set1(1.0f), e), add(set1(1.0f), e));
  big = vxor(big, sign);
  vf r = select(lt(ax, set1(0.625f)), small, big);
  return select(isnan(x), x, r);
}

// ---- sigmoid -----------------------------------------------------------------------------
inline vf sigmoid(vf x) {
  vf e = exp_nonpos(sub(zero(), abs(x)));  // in (0, 1], never overflows
  vf r = div(set1(1.0f), add(set1(1.0f), e));
  vf y = select(lt(x, zero()), mul(e, r), r);
  return select(isnan(x), x, y);
}

}  // namespace lamina::cpu::LAMINA_ISA_NS::vmath
