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
  const int nt = static_cast<int>(min_of<index_t>(threads_for(double(g.planes) * (in + out), 4 * kPerThread), g.planes));
  // The first bad position of each thread's (contiguous) planes; the smallest is the first.
  std::vector<index_t> bad_of(static_cast<std::size_t>(max_of(nt, 1)), -1);
  parallel_team(nt, [&](int tid, int team) {
    auto [p0, p1] = split_range(g.planes, team, tid);
    index_t& my_bad = bad_of[static_cast<std::size_t>(tid)];
    for (index_t p = p0; p < p1; ++p) {
      float* gx = grad_x + p * in;
      const float* gy = grad_y + p * out;
      const std::int64_t* ix = idx + p * out;
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
