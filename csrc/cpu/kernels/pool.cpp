// pool.cpp: 2-D max / average pooling forward and backward on NCHW planes. Compiled once per ISA.
//
//   x (planes, H, W) -> y (planes, OH, OW); window (oh, ow) = rows oh*sh - ph + [0, kh),
//   columns ow*sw - pw + [0, kw), clipped to the input (padding is -inf for max, 0 for avg).
//   max: y = max over the window, idx = ih * W + iw of the first maximum in row-major order
//        (a NaN replaces the running maximum, as in PyTorch: the last NaN wins);
//        backward grad_x[idx] += grad_y.
//   avg: y = sum / (kh * kw); backward grad_x[cell] += grad_y / (kh * kw) for each cell of
//        each window.
// Each plane is independent (one thread each, threads over N*C planes). The backward passes
// zero their own plane of grad_x first (first touch on the thread that writes it).
//
// Max forward, vectorised for any kernel / stride / padding, per output row:
//   1. vertical: for every input column, the best of the window's rows (value, row), with
//      contiguous vector loads down the rows;
//   2. horizontal: for every start column q of the (-inf padded) row, the best of the kw
//      column results at q .. q + kw - 1, from shifted unaligned loads (no shuffles);
//   3. pick the start columns q = ow * sw (a strided copy the compiler vectorises).
// "Best" is a total order that reproduces PyTorch's row-major scan: any NaN beats a number
// and a later NaN beats an earlier one; otherwise larger wins and equal values go to the
// earlier cell (smaller row, then smaller column). Padding cells carry a row past every real
// row so they never win a tie against an input cell. Rows and flat indices are held in float
// lanes (exact below 2^24); planes of 2^24 cells or more, padded rows (W + 2 pw) of 2^24
// cells or more (their start columns would not be exact either: kernel (4, 2**25) with padding
// (0, 2**24) once returned index 16 in a 4x4 plane), padding wider than the row (the scratch
// would grow with the padding, not the input), and the generic (one-lane) build take the
// direct scalar loop, which visits only the input cells of each window.
#include "lamina/pool.h"

#include <cstring>
#include <limits>
#include <vector>

#include "eltwise.h"
#include "vmath.h"
#include "workspace.h"

namespace lamina::cpu::LAMINA_ISA_NS {
namespace {

constexpr double kPerThread = 32 * 1024;  // window cells visited before splitting

// Window bounds along one axis: [lo, hi) within [0, n); `full` when nothing is clipped.
struct Span {
  index_t lo, hi;
  bool full;
};
inline Span span(index_t o, index_t s, index_t p, index_t k, index_t n) {
  const index_t a = o * s - p, b = a + k;
  return {max_of<index_t>(a, 0), min_of(b, n), a >= 0 && b <= n};
}

// KH, KW: compile-time window size, or 0 to read it from g.
template <int KH, int KW>
void max_plane(const float* x, float* y, std::int64_t* idx, const Pool2d& g) {
  const index_t kh = KH ? KH : g.kh, kw = KW ? KW : g.kw, W = g.W;
  for (index_t oh = 0; oh < g.OH; ++oh) {
    const Span r = span(oh, g.sh, g.ph, kh, g.H);
    for (index_t ow = 0; ow < g.OW; ++ow) {
      const Span c = span(ow, g.sw, g.pw, kw, W);
      float best = -std::numeric_limits<float>::infinity();
      index_t bi = r.lo * W + c.lo;
      auto visit = [&](index_t i) {
        const float v = x[i];
        const bool take = v > best || v != v;
        best = take ? v : best;
        bi = take ? i : bi;
      };
      if (r.full && c.full) {
        for (index_t i = 0; i < kh; ++i)
          for (index_t j = 0; j < kw; ++j) visit((r.lo + i) * W + c.lo + j);
      } else {
        for (index_t ih = r.lo; ih < r.hi; ++ih)
          for (index_t iw = c.lo; iw < c.hi; ++iw) visit(ih * W + iw);
      }
      y[oh * g.OW + ow] = best;
      idx[oh * g.OW + ow] = bi;
    }
  }
}

using namespace simd;
constexpr float kPadRow = 33554432.0f;  // 2^25: after every real row (rows < 2^24)
constexpr index_t kMaxFloatIndex = index_t(1) << 24;

// Lanes 0, 1, ..., W-1 as floats.
inline vf lane_iota() {
  alignas(64) static const float iota[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  return load(iota);
}

// Step 3: y[ow] = hv[ow * SW], idx[ow] = hi[ow * SW] (SW = 0: the runtime stride). A
// compile-time stride lets the compiler vectorise the strided picks and the conversions.
template <int SW>
void pick_outputs(const float* hv, const float* hi, float* y, std::int64_t* idx, index_t OW, index_t sw) {
  const index_t s = SW ? SW : sw;
  for (index_t ow = 0; ow < OW; ++ow) {
    y[ow] = hv[ow * s];
    idx[ow] = static_cast<std::int64_t>(hi[ow * s]);
  }
}

// Vectorised max_plane (see the header comment); needs H * W < 2^24 (flat indices exact in
// float lanes). Output rows go in bands of kBand, each step over the whole band before the
// next, so the shifted / strided loads of a step do not wait on the previous step's stores of
// the same row (a failed store-to-load forward costs more than the compares).
// scratch: 4 kBand (W + 2 pw) floats.
constexpr index_t kBand = 8;
void max_plane_simd(const float* x, float* y, std::int64_t* idx, const Pool2d& g, float* scratch) {
  const index_t Wd = g.W, Wp = g.W + 2 * g.pw, Q = Wp - g.kw + 1;  // Q start columns
  float* cv = scratch;             // per band row: column best value, padded: [0, pw) and
  float* cr = cv + kBand * Wp;     //   [pw + W, Wp) are padding; its row (kPadRow in padding)
  float* hv = cr + kBand * Wp;     // per band row: best over the kw columns starting at q,
  float* hi = hv + kBand * Wp;     //   its flat index ih * W + iw in the plane
  const float inf = std::numeric_limits<float>::infinity();
  for (index_t b = 0; b < kBand; ++b)
    for (index_t q = 0; q < g.pw; ++q) {
      cv[b * Wp + q] = cv[b * Wp + g.pw + Wd + q] = -inf;
      cr[b * Wp + q] = cr[b * Wp + g.pw + Wd + q] = kPadRow;
    }
  const vf iota = lane_iota(), wf = set1(float(Wd));
  for (index_t oh0 = 0; oh0 < g.OH; oh0 += kBand) {
    const index_t oh1 = min_of(g.OH, oh0 + kBand);
    // 1. vertical, every row of the band
    for (index_t oh = oh0; oh < oh1; ++oh) {
      const Span r = span(oh, g.sh, g.ph, g.kh, g.H);
      float* bv = cv + (oh - oh0) * Wp + g.pw;
      float* brow = cr + (oh - oh0) * Wp + g.pw;
      for (index_t c = 0; c < Wd; c += W) {
        const index_t n = Wd - c;
        vf b = load_n(x + r.lo * Wd + c, n, 0.0f), br = set1(float(r.lo));
        for (index_t ih = r.lo + 1; ih < r.hi; ++ih) {
          const vf v = load_n(x + ih * Wd + c, n, 0.0f);
          const auto take = vmath::mor(vmath::gt(v, b), vmath::isnan(v));
          b = vmath::select(take, v, b);
          br = vmath::select(take, set1(float(ih)), br);
        }
        store_n(bv + c, n, b);
        store_n(brow + c, n, br);
      }
    }
    for (index_t oh = oh0; oh < oh1; ++oh) {
      const float* bv = cv + (oh - oh0) * Wp;
      const float* brow = cr + (oh - oh0) * Wp;
      float* hvr = hv + (oh - oh0) * Wp;
      float* hir = hi + (oh - oh0) * Wp;
      // 2. horizontal
      for (index_t q = 0; q < Q; q += W) {
        const index_t n = Q - q;
        vf b = load_n(bv + q, n, -inf), br = load_n(brow + q, n, kPadRow), bj = zero();
        for (index_t j = 1; j < g.kw; ++j) {
          const vf v = load_n(bv + q + j, n, -inf), vr = load_n(brow + q + j, n, kPadRow);
          const auto vnan = vmath::isnan(v);
          // numbers: larger, or equal and on an earlier row (same row: keep the earlier column)
          const auto take_num = vmath::mor(vmath::gt(v, b), vmath::mand(vmath::eq(v, b), vmath::lt(vr, br)));
          // a NaN candidate (later column): beats a number, or a NaN on the same or an earlier row
          const auto take_nan = vmath::mor(vmath::mnot(vmath::isnan(b)), vmath::ge(vr, br));
          const auto take = vmath::mor(vmath::mand(vnan, take_nan), take_num);
          b = vmath::select(take, v, b);
          br = vmath::select(take, vr, br);
          bj = vmath::select(take, set1(float(j)), bj);
        }
        // flat index = row * W + column, column = q + lane + j - pw (exact: below 2^24)
        const vf col = add(add(set1(float(q - g.pw)), iota), bj);
        store_n(hvr + q, n, b);
        store_n(hir + q, n, fma(br, wf, col));
      }
    }
    // 3. pick
    for (index_t oh = oh0; oh < oh1; ++oh) {
      const float* hvr = hv + (oh - oh0) * Wp;
      const float* hir = hi + (oh - oh0) * Wp;
      float* yr = y + oh * g.OW;
      std::int64_t* ir = idx + oh * g.OW;
      if (g.sw == 1) pick_outputs<1>(hvr, hir, yr, ir, g.OW, 1);
      else if (g.sw == 2) pick_outputs<2>(hvr, hir, yr, ir, g.OW, 2);
      else pick_outputs<0>(hvr, hir, yr, ir, g.OW, g.sw);
    }
  }
}

// ---- 2x2 windows, stride 2, no padding (LeNet's pools) ----------------------------------
// Windows are disjoint: output (oh, ow) reads input rows 2oh, 2oh + 1 and columns 2ow, 2ow + 1
// (floor mode: an odd last row / column is in no window).
// Forward, per output row, a vector of outputs at a time: contiguous (masked) loads of both
// input rows, even / odd columns split by shuffles, then the four cells visited in row-major
// order with the scalar loop's rule (take when v > best or v is NaN) -- so the values, the
// first-maximum indices and the last-NaN rule are those of max_plane bit for bit. Indices are
// built in int32 lanes (planes below 2^30 cells) and widened to int64 on the store.
// Backward (max_pool2d_backward only sees grad_y, idx and the shapes): when OH = H / 2 and
// OW = W / 2, each plane is written densely, whole rows of grad_x at a time, grad_y + 0 at the
// cell idx names and 0 elsewhere in its window (the same bits as zeroing then +=, -0 included),
// uncovered rows / columns zeroed. That is only the scatter when every index lies inside its
// own 2x2 window; a plane with any other index is redone by the general zero + scatter loop
// (which also reports indices outside the plane).
constexpr index_t kMax22Cells = index_t(1) << 30;

inline bool is_pool22(const Pool2d& g) {
  return g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0;
}

#if LAMINA_ISA_ID >= 1
// AVX2 (also the AVX-512 build's choice for rows of at most 8 outputs). Eight outputs per step;
// the even / odd split (shufps) leaves them in the order s = 0 1 4 5 2 3 6 7, kept through the
// compares and undone once at the end (vpermq 0xD8 is its own inverse).
inline __m256i mask8(index_t n) {  // the first n (clamped to [0, 8]) of 8 int32 lanes
  const int k = static_cast<int>(n < 0 ? 0 : n > 8 ? 8 : n);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline __m256i mask4q(index_t n) {  // the first n (clamped to [0, 4]) of 4 int64 lanes
  const long long k = n < 0 ? 0 : n > 4 ? 4 : n;
  return _mm256_cmpgt_epi64(_mm256_set1_epi64x(k), _mm256_setr_epi64x(0, 1, 2, 3));
}
// Partial vectors: the first n lanes (n clamped to the vector). The AVX-512 build uses its
// mask registers (AVX-512VL); plain AVX2 loads with vmaskmov but stores through a stack buffer
// (vmaskmov stores are microcoded and slow on AMD cores).
inline int clamp_n(index_t n, int w) { return static_cast<int>(n < 0 ? 0 : n > w ? w : n); }
#if LAMINA_ISA_ID == 2
inline __mmask8 kmask8(index_t n) { return static_cast<__mmask8>((1u << clamp_n(n, 8)) - 1u); }
inline __m256 load8_n(const float* p, index_t n) { return _mm256_maskz_loadu_ps(kmask8(n), p); }
inline __m256i load4q_n(const std::int64_t* p, index_t n) { return _mm256_maskz_loadu_epi64(kmask8(n), p); }
inline void store8_n(float* p, index_t n, __m256 v) { _mm256_mask_storeu_ps(p, kmask8(n), v); }
inline void store4q_n(std::int64_t* p, index_t n, __m256i v) { _mm256_mask_storeu_epi64(p, kmask8(n), v); }
#else
inline __m256 load8_n(const float* p, index_t n) { return _mm256_maskload_ps(p, mask8(n)); }
inline __m256i load4q_n(const std::int64_t* p, index_t n) {
  return _mm256_maskload_epi64(reinterpret_cast<const long long*>(p), mask4q(n));
}
inline void store8_n(float* p, index_t n, __m256 v) {
  alignas(32) float b[8];
  _mm256_store_ps(b, v);
  for (int i = 0, k = clamp_n(n, 8); i < k; ++i) p[i] = b[i];
}
inline void store4q_n(std::int64_t* p, index_t n, __m256i v) {
  alignas(32) std::int64_t b[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(b), v);
  for (int i = 0, k = clamp_n(n, 4); i < k; ++i) p[i] = b[i];
}
#endif
inline __m256 take8(__m256 v, __m256 best) {
  return _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
}

void max_plane22_w8(const float* x, float* y, std::int64_t* idx, const Pool2d& g) {
  const index_t Wd = g.W, OW = g.OW;
  const __m256i s2 = _mm256_setr_epi32(0, 2, 8, 10, 4, 6, 12, 14);  // 2 * s
  const __m256i one = _mm256_set1_epi32(1), wv = _mm256_set1_epi32(static_cast<int>(Wd)),
                w1 = _mm256_set1_epi32(static_cast<int>(Wd + 1));
  for (index_t oh = 0; oh < g.OH; ++oh) {
    const float* r0 = x + 2 * oh * Wd;
    const float* r1 = r0 + Wd;
    float* yr = y + oh * OW;
    std::int64_t* ir = idx + oh * OW;
    for (index_t ow = 0; ow < OW; ow += 8) {
      const index_t n = OW - ow, c = 2 * ow;
      __m256 a0, a1, b0, b1;
      if (n >= 8) {
        a0 = _mm256_loadu_ps(r0 + c), a1 = _mm256_loadu_ps(r0 + c + 8);
        b0 = _mm256_loadu_ps(r1 + c), b1 = _mm256_loadu_ps(r1 + c + 8);
      } else {
        a0 = load8_n(r0 + c, 2 * n), a1 = load8_n(r0 + c + 8, 2 * n - 8);
        b0 = load8_n(r1 + c, 2 * n), b1 = load8_n(r1 + c + 8, 2 * n - 8);
      }
      const __m256 v1 = _mm256_shuffle_ps(a0, a1, 0xDD), v2 = _mm256_shuffle_ps(b0, b1, 0x88),
                   v3 = _mm256_shuffle_ps(b0, b1, 0xDD);
      __m256 best = _mm256_shuffle_ps(a0, a1, 0x88);
      const __m256i base = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(2 * oh * Wd + c)), s2);
      __m256 bi = _mm256_castsi256_ps(base);
      __m256 t = take8(v1, best);
      best = _mm256_blendv_ps(best, v1, t);
      bi = _mm256_blendv_ps(bi, _mm256_castsi256_ps(_mm256_add_epi32(base, one)), t);
      t = take8(v2, best);
      best = _mm256_blendv_ps(best, v2, t);
      bi = _mm256_blendv_ps(bi, _mm256_castsi256_ps(_mm256_add_epi32(base, wv)), t);
      t = take8(v3, best);
      best = _mm256_blendv_ps(best, v3, t);
      bi = _mm256_blendv_ps(bi, _mm256_castsi256_ps(_mm256_add_epi32(base, w1)), t);
      best = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(best), 0xD8));
      const __m256i bu = _mm256_permute4x64_epi64(_mm256_castps_si256(bi), 0xD8);
      const __m256i lo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(bu)),
                    hi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(bu, 1));
      auto* ip = reinterpret_cast<long long*>(ir + ow);
      if (n >= 8) {
        _mm256_storeu_ps(yr + ow, best);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(ip), lo);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(ip + 4), hi);
      } else {
        store8_n(yr + ow, n, best);
        store4q_n(ir + ow, n, lo);
        store4q_n(ir + ow + 4, n - 4, hi);
      }
    }
  }
}

// false: some index is not in its own window (grad_x then unspecified; the caller redoes it).
bool max_plane22_backward_w8(const float* gy, const std::int64_t* ix, float* gx, const Pool2d& g) {
  const index_t Wd = g.W, OW = g.OW;
  const __m256i q2 = _mm256_setr_epi64x(0, 2, 4, 6), q8 = _mm256_set1_epi64x(8);
  const __m256i o1 = _mm256_set1_epi64x(1), oW = _mm256_set1_epi64x(Wd), oW1 = _mm256_set1_epi64x(Wd + 1);
  const __m256 zero = _mm256_setzero_ps();
  auto eq = [](__m256i i0, __m256i i1, __m256i b0, __m256i b1) {  // 8 int64 compares -> s order
    return _mm256_shuffle_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi64(i0, b0)),
                             _mm256_castsi256_ps(_mm256_cmpeq_epi64(i1, b1)), 0x88);
  };
  for (index_t oh = 0; oh < g.OH; ++oh) {
    float* r0 = gx + 2 * oh * Wd;
    float* r1 = r0 + Wd;
    const float* gr = gy + oh * OW;
    const std::int64_t* ir = ix + oh * OW;
    for (index_t ow = 0; ow < OW; ow += 8) {
      const index_t n = OW - ow, c = 2 * ow;
      const auto* ip = reinterpret_cast<const long long*>(ir + ow);
      __m256 gv;
      __m256i i0, i1;
      if (n >= 8) {
        gv = _mm256_loadu_ps(gr + ow);
        i0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ip));
        i1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ip + 4));
      } else {
        gv = load8_n(gr + ow, n);
        i0 = load4q_n(ir + ow, n);
        i1 = load4q_n(ir + ow + 4, n - 4);
      }
      gv = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(gv), 0xD8));  // to s order
      const __m256i b0 = _mm256_add_epi64(_mm256_set1_epi64x(2 * oh * Wd + c), q2), b1 = _mm256_add_epi64(b0, q8);
      const __m256 m00 = eq(i0, i1, b0, b1);
      const __m256 m01 = eq(i0, i1, _mm256_add_epi64(b0, o1), _mm256_add_epi64(b1, o1));
      const __m256 m10 = eq(i0, i1, _mm256_add_epi64(b0, oW), _mm256_add_epi64(b1, oW));
      const __m256 m11 = eq(i0, i1, _mm256_add_epi64(b0, oW1), _mm256_add_epi64(b1, oW1));
      const int hit = _mm256_movemask_ps(_mm256_or_ps(_mm256_or_ps(m00, m01), _mm256_or_ps(m10, m11)));
      // active lanes, in s order: outputs 0 1 4 5 2 3 6 7 -> bits
      const int want = n >= 8 ? 0xFF : _mm256_movemask_ps(_mm256_castpd_ps(
                                           _mm256_permute4x64_pd(_mm256_castsi256_pd(mask8(n)), 0xD8)));
      if ((hit & want) != want) return false;
      const __m256 e0 = _mm256_add_ps(_mm256_and_ps(m00, gv), zero), d0 = _mm256_add_ps(_mm256_and_ps(m01, gv), zero);
      const __m256 e1 = _mm256_add_ps(_mm256_and_ps(m10, gv), zero), d1 = _mm256_add_ps(_mm256_and_ps(m11, gv), zero);
      const __m256 lo0 = _mm256_unpacklo_ps(e0, d0), hi0 = _mm256_unpackhi_ps(e0, d0);
      const __m256 lo1 = _mm256_unpacklo_ps(e1, d1), hi1 = _mm256_unpackhi_ps(e1, d1);
      if (n >= 8) {
        _mm256_storeu_ps(r0 + c, lo0), _mm256_storeu_ps(r0 + c + 8, hi0);
        _mm256_storeu_ps(r1 + c, lo1), _mm256_storeu_ps(r1 + c + 8, hi1);
      } else {
        store8_n(r0 + c, 2 * n, lo0), store8_n(r0 + c + 8, 2 * n - 8, hi0);
        store8_n(r1 + c, 2 * n, lo1), store8_n(r1 + c + 8, 2 * n - 8, hi1);
      }
    }
    if (Wd & 1) r0[Wd - 1] = r1[Wd - 1] = 0.0f;
  }
  if (g.H & 1) std::memset(gx + (g.H - 1) * Wd, 0, sizeof(float) * static_cast<std::size_t>(Wd));
  return true;
}
#endif

#if LAMINA_ISA_ID == 2
// AVX-512: sixteen outputs per step; vpermt2ps splits even / odd columns in output order.
inline __mmask16 mask16(index_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1u);
}
inline __mmask8 mask8q(index_t n) { return n >= 8 ? __mmask8(0xFF) : n <= 0 ? __mmask8(0) : __mmask8((1u << n) - 1u); }
inline __mmask16 take16(__m512 v, __m512 best) {
  return _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
}

void max_plane22_w16(const float* x, float* y, std::int64_t* idx, const Pool2d& g) {
  const index_t Wd = g.W, OW = g.OW;
  const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
  const __m512i one = _mm512_set1_epi32(1), wv = _mm512_set1_epi32(static_cast<int>(Wd)),
                w1 = _mm512_set1_epi32(static_cast<int>(Wd + 1));
  for (index_t oh = 0; oh < g.OH; ++oh) {
    const float* r0 = x + 2 * oh * Wd;
    const float* r1 = r0 + Wd;
    float* yr = y + oh * OW;
    std::int64_t* ir = idx + oh * OW;
    for (index_t ow = 0; ow < OW; ow += 16) {
      const index_t n = OW - ow, c = 2 * ow;
      const __mmask16 ma = mask16(2 * n), mb = mask16(2 * n - 16);
      const __m512 a0 = _mm512_maskz_loadu_ps(ma, r0 + c), a1 = _mm512_maskz_loadu_ps(mb, r0 + c + 16);
      const __m512 b0 = _mm512_maskz_loadu_ps(ma, r1 + c), b1 = _mm512_maskz_loadu_ps(mb, r1 + c + 16);
      __m512 best = _mm512_permutex2var_ps(a0, ev, a1);
      const __m512 v1 = _mm512_permutex2var_ps(a0, od, a1), v2 = _mm512_permutex2var_ps(b0, ev, b1),
                   v3 = _mm512_permutex2var_ps(b0, od, b1);
      const __m512i base = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(2 * oh * Wd + c)), ev);
      __m512i bi = base;
      __mmask16 t = take16(v1, best);
      best = _mm512_mask_mov_ps(best, t, v1);
      bi = _mm512_mask_add_epi32(bi, t, base, one);
      t = take16(v2, best);
      best = _mm512_mask_mov_ps(best, t, v2);
      bi = _mm512_mask_add_epi32(bi, t, base, wv);
      t = take16(v3, best);
      best = _mm512_mask_mov_ps(best, t, v3);
      bi = _mm512_mask_add_epi32(bi, t, base, w1);
      const __m512i lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(bi)),
                    hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(bi, 1));
      _mm512_mask_storeu_ps(yr + ow, mask16(n), best);
      _mm512_mask_storeu_epi64(ir + ow, mask8q(n), lo);
      _mm512_mask_storeu_epi64(ir + ow + 8, mask8q(n - 8), hi);
    }
  }
}

bool max_plane22_backward_w16(const float* gy, const std::int64_t* ix, float* gx, const Pool2d& g) {
  const index_t Wd = g.W, OW = g.OW;
  const __m512i q2 = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14), q16 = _mm512_set1_epi64(16);
  const __m512i o1 = _mm512_set1_epi64(1), oW = _mm512_set1_epi64(Wd), oW1 = _mm512_set1_epi64(Wd + 1);
  const __m512i ilo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i ihi = _mm512_add_epi32(ilo, _mm512_set1_epi32(8));
  const __m512 zero = _mm512_setzero_ps();
  auto eq = [](__m512i i0, __m512i i1, __m512i b0, __m512i b1) {
    return _mm512_kunpackb(_mm512_cmpeq_epi64_mask(i1, b1), _mm512_cmpeq_epi64_mask(i0, b0));
  };
  for (index_t oh = 0; oh < g.OH; ++oh) {
    float* r0 = gx + 2 * oh * Wd;
    float* r1 = r0 + Wd;
    const float* gr = gy + oh * OW;
    const std::int64_t* ir = ix + oh * OW;
    for (index_t ow = 0; ow < OW; ow += 16) {
      const index_t n = OW - ow, c = 2 * ow;
      const __mmask16 act = mask16(n);
      const __m512 gv = _mm512_maskz_loadu_ps(act, gr + ow);
      const __m512i i0 = _mm512_maskz_loadu_epi64(mask8q(n), ir + ow),
                    i1 = _mm512_maskz_loadu_epi64(mask8q(n - 8), ir + ow + 8);
      const __m512i b0 = _mm512_add_epi64(_mm512_set1_epi64(2 * oh * Wd + c), q2), b1 = _mm512_add_epi64(b0, q16);
      const __mmask16 m00 = eq(i0, i1, b0, b1);
      const __mmask16 m01 = eq(i0, i1, _mm512_add_epi64(b0, o1), _mm512_add_epi64(b1, o1));
      const __mmask16 m10 = eq(i0, i1, _mm512_add_epi64(b0, oW), _mm512_add_epi64(b1, oW));
      const __mmask16 m11 = eq(i0, i1, _mm512_add_epi64(b0, oW1), _mm512_add_epi64(b1, oW1));
      if (static_cast<__mmask16>((m00 | m01 | m10 | m11) & act) != act) return false;
      const __m512 e0 = _mm512_maskz_add_ps(m00, gv, zero), d0 = _mm512_maskz_add_ps(m01, gv, zero);
      const __m512 e1 = _mm512_maskz_add_ps(m10, gv, zero), d1 = _mm512_maskz_add_ps(m11, gv, zero);
      const __mmask16 ma = mask16(2 * n), mb = mask16(2 * n - 16);
      _mm512_mask_storeu_ps(r0 + c, ma, _mm512_permutex2var_ps(e0, ilo, d0));
      _mm512_mask_storeu_ps(r0 + c + 16, mb, _mm512_permutex2var_ps(e0, ihi, d0));
      _mm512_mask_storeu_ps(r1 + c, ma, _mm512_permutex2var_ps(e1, ilo, d1));
      _mm512_mask_storeu_ps(r1 + c + 16, mb, _mm512_permutex2var_ps(e1, ihi, d1));
    }
    if (Wd & 1) r0[Wd - 1] = r1[Wd - 1] = 0.0f;
  }
  if (g.H & 1) std::memset(gx + (g.H - 1) * Wd, 0, sizeof(float) * static_cast<std::size_t>(Wd));
  return true;
}
#endif

// The 2x2 / 2 forward plane kernel of this build and row width (nullptr: none).
using Max22Fn = void (*)(const float*, float*, std::int64_t*, const Pool2d&);
using Max22BwdFn = bool (*)(const float*, const std::int64_t*, float*, const Pool2d&);
inline Max22Fn max22_kernel(const Pool2d& g) {
  if (!is_pool22(g) || g.H * g.W >= kMax22Cells) return nullptr;
#if LAMINA_ISA_ID == 2
  if (g.OW > 8) return &max_plane22_w16;
#endif
#if LAMINA_ISA_ID >= 1
  return &max_plane22_w8;
#else
  return nullptr;
#endif
}
// Backward: only the shapes are known (OH = H / 2, OW = W / 2 is the 2x2 / 2 geometry's).
inline Max22BwdFn max22_backward_kernel(const Pool2d& g) {
  if (g.OH < 1 || g.OW < 1 || g.OH != g.H / 2 || g.OW != g.W / 2 || g.H * g.W >= kMax22Cells) return nullptr;
  // Rows of fewer than 8 outputs: the per-row work of the dense pass costs more than the
  // general zero + scatter loop saves (measured at 10x10 -> 5x5 on Zen 4: 40 vs 30 us).
  if (g.OW < 8) return nullptr;
#if LAMINA_ISA_ID == 2
  if (g.OW > 8) return &max_plane22_backward_w16;
#endif
#if LAMINA_ISA_ID >= 1
  return &max_plane22_backward_w8;
#else
  return nullptr;
#endif
}

template <int KH, int KW>
void avg_plane(const float* x, float* y, const Pool2d& g) {
  const index_t kh = KH ? KH : g.kh, kw = KW ? KW : g.kw, W = g.W;
  // kh * kw in float: kernel (2**62, 2**62) on a padded 1x1 input is a valid (if absurd)
  // window whose integer area overflows; exact (the same value) below 2^24.
  const float inv = 1.0f / (static_cast<float>(kh) * static_cast<float>(kw));
  for (index_t oh = 0; oh < g.OH; ++oh) {
    const Span r = span(oh, g.sh, g.ph, kh, g.H);
    for (index_t ow = 0; ow < g.OW; ++ow) {
      const Span c = span(ow, g.sw, g.pw, kw, W);
      float s = 0.0f;
      if (r.full && c.full) {
        for (index_t i = 0; i < kh; ++i)
          for (index_t j = 0; j < kw; ++j) s += x[(r.lo + i) * W + c.lo + j];
      } else {
        for (index_t ih = r.lo; ih < r.hi; ++ih)
          for (index_t iw = c.lo; iw < c.hi; ++iw) s += x[ih * W + iw];
      }
      y[oh * g.OW + ow] = s * inv;
    }
  }
}

template <int KH, int KW>
void avg_plane_backward(const float* gy, float* gx, const Pool2d& g) {
  const index_t kh = KH ? KH : g.kh, kw = KW ? KW : g.kw, W = g.W;
  const float inv = 1.0f / (static_cast<float>(kh) * static_cast<float>(kw));  // as avg_plane
  std::memset(gx, 0, sizeof(float) * static_cast<std::size_t>(g.H * W));
  for (index_t oh = 0; oh < g.OH; ++oh) {
    const Span r = span(oh, g.sh, g.ph, kh, g.H);
    for (index_t ow = 0; ow < g.OW; ++ow) {
      const Span c = span(ow, g.sw, g.pw, kw, W);
      const float v = gy[oh * g.OW + ow] * inv;
      if (r.full && c.full) {
        for (index_t i = 0; i < kh; ++i)
          for (index_t j = 0; j < kw; ++j) gx[(r.lo + i) * W + c.lo + j] += v;
      } else {
        for (index_t ih = r.lo; ih < r.hi; ++ih)
          for (index_t iw = c.lo; iw < c.hi; ++iw) gx[ih * W + iw] += v;
      }
    }
  }
}

// Runs plane(p) for every plane, over threads when the whole job is large enough.
template <class Plane>
void for_planes(const Pool2d& g, double cells_per_plane, Plane&& plane) {
  const int nt = static_cast<int>(
      min_of<index_t>(threads_for(double(g.planes) * cells_per_plane, kPerThread), g.planes));
  parallel_for(g.planes, nt, plane);
}

// The plane kernel for this window size: 2x2 and 3x3 unrolled, anything else generic.
template <template <int, int> class Sel>
auto pick(const Pool2d& g) {
  if (g.kh == 2 && g.kw == 2) return Sel<2, 2>::fn;
  if (g.kh == 3 && g.kw == 3) return Sel<3, 3>::fn;
  return Sel<0, 0>::fn;
}
template <int KH, int KW> struct MaxSel { static constexpr auto fn = &max_plane<KH, KW>; };
template <int KH, int KW> struct AvgSel { static constexpr auto fn = &avg_plane<KH, KW>; };
template <int KH, int KW> struct AvgBwdSel { static constexpr auto fn = &avg_plane_backward<KH, KW>; };

}  // namespace

void max_pool2d(const float* x, float* y, std::int64_t* idx, const Pool2d& g) {
  const index_t in = g.H * g.W, out = g.OH * g.OW;
  // The scalar build keeps the direct loop (one lane gains nothing from the two-step form);
  // very large planes too (flat indices would not be exact in float lanes).
  // Window cells visited (an estimate, in double: kh * kw may not fit in 64 bits).
  const double work = double(out) * double(g.kh) * double(g.kw);
  const index_t wp = g.W + 2 * g.pw;  // checked by the binding
  if (const Max22Fn fn = max22_kernel(g)) {
    for_planes(g, work, [&](index_t p) { fn(x + p * in, y + p * out, idx + p * out, g); });
    return;
  }
  if (LAMINA_ISA_ID == 0 || in >= kMaxFloatIndex || wp + 2 * simd::W >= kMaxFloatIndex || g.pw > g.W) {
    const auto plane_fn = pick<MaxSel>(g);
    for_planes(g, work, [&](index_t p) { plane_fn(x + p * in, y + p * out, idx + p * out, g); });
    return;
  }
  const std::size_t scratch = workspace_floats(4 * kBand, wp);
  for_planes(g, work, [&](index_t p) {
    max_plane_simd(x + p * in, y + p * out, idx + p * out, g, thread_buffer(2, scratch));
  });
}

index_t max_pool2d_backward(const float* grad_y, const std::int64_t* idx, float* grad_x, const Pool2d& g) {
  const index_t in = g.H * g.W, out = g.OH * g.OW;
  const int nt = static_cast<int>(min_of<index_t>(threads_for(double(g.planes) * (in + out), kPerThread), g.planes));
  // The first bad position of each thread's (contiguous) planes; the smallest is the first.
  std::vector<index_t> bad_of(static_cast<std::size_t>(max_of(nt, 1)), -1);
  const Max22BwdFn dense = max22_backward_kernel(g);
  parallel_team(nt, [&](int tid, int team) {
    auto [p0, p1] = split_range(g.planes, team, tid);
    index_t& my_bad = bad_of[static_cast<std::size_t>(tid)];
    for (index_t p = p0; p < p1; ++p) {
      float* gx = grad_x + p * in;
      const float* gy = grad_y + p * out;
      const std::int64_t* ix = idx + p * out;
      if (dense && dense(gy, ix, gx, g)) continue;
      std::memset(gx, 0, sizeof(float) * static_cast<std::size_t>(in));
      for (index_t o = 0; o < out; ++o) {
        const std::int64_t i = ix[o];
        // One unsigned compare rejects negatives too; a bad index is recorded, never used.
        if (static_cast<std::uint64_t>(i) >= static_cast<std::uint64_t>(in)) {
          if (my_bad < 0) my_bad = p * out + o;
          continue;
        }
        gx[i] += gy[o];
      }
    }
  });
  index_t bad = -1;
  for (index_t b : bad_of)
    if (b >= 0 && (bad < 0 || b < bad)) bad = b;
  return bad;
}

void avg_pool2d(const float* x, float* y, const Pool2d& g) {
  const auto plane_fn = pick<AvgSel>(g);
  const index_t in = g.H * g.W, out = g.OH * g.OW;
  for_planes(g, double(out) * double(g.kh) * double(g.kw),
             [&](index_t p) { plane_fn(x + p * in, y + p * out, g); });
}

void avg_pool2d_backward(const float* grad_y, float* grad_x, const Pool2d& g) {
  const auto plane_fn = pick<AvgBwdSel>(g);
  const index_t in = g.H * g.W, out = g.OH * g.OW;
  for_planes(g, double(in) + double(out) * double(g.kh) * double(g.kw),
             [&](index_t p) { plane_fn(grad_y + p * out, grad_x + p * in, g); });
}

}  // namespace lamina::cpu::LAMINA_ISA_NS
