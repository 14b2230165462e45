// conv.cpp: 2-D convolution forward and backward as im2col + GEMM, compiled once per ISA.
//
// For one image n, with K = C*kH*kW rows (c, ki, kj) and P = OH*OW columns (oh, ow):
//   col[n] (K x P):   col[(c,ki,kj), (oh,ow)] = x[n, c, oh*sh - ph + ki*dh, ow*sw - pw + kj*dw]
//                     (0 where that falls in the padding)
//   forward:          y[n] (O x P) = w (O x K) * col[n]  + b per row, ReLU   (GEMM epilogue)
//   backward:         grad_b      = sum over n, P of grad_y
//                     grad_w     += grad_y[n] (O x P) * col[n]^T (P x K)     (beta = 1)
//                     grad_col    = w^T (K x O) * grad_y[n] (O x P), then col2im adds each
//                                   entry back onto the input pixel it was copied from.
// A 1x1, stride-1, unpadded convolution needs no unrolling: col[n] is x[n] seen as (C x H*W).
//
// Tiles: the GEMMs run on a "tile" of columns: a chunk of whole output rows of one image, or,
// when images are small (P columns each), several whole images side by side (col is then
// K x nb*P, and y / grad_y pass through a small O x nb*P staging copy), so that small layers
// still make GEMMs of a few hundred columns. grad_w is a packed GEMM, or, with few output
// channels, dot products of rows (gemm_nt_dot); grad_x from grad_col is output-stationary
// for stride 1 (col2im_rows), a scatter otherwise.
//
// Memory: the column matrix is never built for the whole batch, nor for a whole image when
// that is large. Each thread owns one reusable buffer (workspace slot 2) holding its tile's
// columns (K x ncols) and staging (O x ncols), with K * ncols <= kColCapFloats (512 KiB) unless
// one output row is bigger (then ncols = OW); the backward pass reuses the columns for
// grad_col, and over the batch adds per-thread grad_w / grad_b partial sums (slot 3, O*K + O
// floats). Extra memory of one call, beyond its inputs, outputs and the GEMM's own packing:
//   <= threads * 4 bytes * ((K + O) * max(kColCapFloats / K, OW) + O*K + O)
// In practice, per thread: 77 KiB for LeNet's conv1 (64, 1, 28, 28) -> 6, 5x5 pad 2; 400 KiB
// for conv2 (64, 6, 14, 14) -> 16, 5x5 (6 images per tile); 360 KiB for (64, 32, 16, 16) -> 64,
// 3x3 pad 1 (one image per tile, 288 KiB, + 72 KiB of grad_w partial sums).
//
// Threads: forward, each thread takes a contiguous share of the (image, output row) pairs,
// so a batch splits by images and a single image by rows. Backward, a batch splits by whole
// images (per-thread grad_w partials, reduced at the end); fewer images than threads split
// the input channels (each thread its own columns of grad_w and channels of grad_x); with
// neither, threads work inside the GEMMs. Small problems stay on one thread.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <utility>
#include <vector>

#include "lamina/conv.h"
#include "lamina/cpu/gemm_config.h"
#include "lamina/cpu/simd.h"
#include "lamina/gemm.h"
#include "lamina/parallel.h"
#include "lamina/cpu/tuning.h"
#include "conv_direct.h"
#include "winograd.h"
#include "workspace.h"

namespace lamina::cpu::LAMINA_ISA_NS {

// This ISA's GEMM (kernels/gemm.cpp), called directly: no dispatch switch per tile.
decltype(::lamina::cpu::sgemm) sgemm;

namespace {

using namespace simd;

// Floats of column matrix per thread: 512 KiB stays in L2 between the unrolling and the GEMM
// that reads it, and holds a whole image for every layer of a LeNet / small VGG.
constexpr index_t kColCapFloats = index_t(1) << 17;
// Images are batched into one GEMM until the tile has about this many columns.
constexpr index_t kTargetCols = 512;
// Below this many flops per thread, a thread's start-up costs more than it saves.
constexpr double kMinFlopsPerThread = 3e5;
// Workspace slots (0 and 1 belong to the GEMM).
constexpr int kSlotTile = 2, kSlotPartial = 3;

// Thread tid's share of summing the team's partial grad_w (wk floats) and grad_b (O floats),
// each partial laid out [grad_w | grad_b], into grad_w and grad_b (overwritten).
void reduce_partials(const std::vector<float*>& partial, int tid, int team, index_t wk, index_t O,
                     float* grad_w, float* grad_b) {
  auto [i0, i1] = split_range(wk + O, team, tid, W);
  for (index_t i = i0; i < i1; ++i) {
    float t = 0.0f;
    for (int p = 0; p < team; ++p) t += partial[static_cast<std::size_t>(p)][i];
    if (i < wk) grad_w[i] = t;
    else grad_b[i - wk] = t;
  }
}

// The rows of pooled_rows: W lanes (any kW <= W), or 8 lanes where kW <= 8 (one 256-bit
// operation per row).
constexpr index_t kPooledSlack = 16;  // floats past the image copy that a row load may read
struct RowsW {
  static constexpr int L = simd::W;
  using vf = simd::vf;
  static vf zero() { return simd::zero(); }
  static vf set1(float x) { return simd::set1(x); }
  static vf load(const float* p) { return simd::load(p); }
  static vf fma(vf a, vf b, vf c) { return simd::fma(a, b, c); }
  static vf add(vf a, vf b) { return simd::add(a, b); }
  static void store(float* p, vf v) { simd::store(p, v); }
};
#if LAMINA_ISA_ID >= 1
struct Rows8 {
  static constexpr int L = 8;
  using vf = __m256;
  static vf zero() { return _mm256_setzero_ps(); }
  static vf set1(float x) { return _mm256_set1_ps(x); }
  static vf load(const float* p) { return _mm256_loadu_ps(p); }
  static vf fma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
  static vf add(vf a, vf b) { return _mm256_add_ps(a, b); }
  static void store(float* p, vf v) { _mm256_storeu_ps(p, v); }
};
#else
using Rows8 = RowsW;
#endif

// R rows (row stride rs) of kW <= V::L taps: out[r * kW + 0..kW) += sum over t < cnt of
// g[t] * xc[off_of[idx[t]] + r * rs + 0..kW), the sums in registers. Whole V::L-float rows are
// loaded (one FMA with a memory operand per row; the lanes past kW are summed and dropped): xc
// is the thread's copy of the image, with kPooledSlack floats past its end. Returns the first
// t whose idx[t] is not below `plane` (nothing is added then), or -1.
template <class V, int R>
index_t pooled_rows(const float* xc, index_t rs, const float* g, const std::int64_t* idx, const index_t* off_of,
                    std::uint64_t plane, index_t cnt, int kW, float* out) {
  // Two sets of accumulators (even and odd t): one set alone waits on the FMA latency.
  typename V::vf acc[R], acc2[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) acc[r] = acc2[r] = V::zero();
  index_t t = 0;
  for (; t + 2 <= cnt; t += 2) {
    const auto at0 = static_cast<std::uint64_t>(idx[t]), at1 = static_cast<std::uint64_t>(idx[t + 1]);
    if ((at0 >= plane) | (at1 >= plane)) return at0 >= plane ? t : t + 1;
    const typename V::vf g0 = V::set1(g[t]), g1 = V::set1(g[t + 1]);
    const float *p0 = xc + off_of[at0], *p1 = xc + off_of[at1];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      acc[r] = V::fma(g0, V::load(p0 + r * rs), acc[r]);
      acc2[r] = V::fma(g1, V::load(p1 + r * rs), acc2[r]);
    }
  }
  if (t < cnt) {
    const auto at0 = static_cast<std::uint64_t>(idx[t]);
    if (at0 >= plane) return t;
    const typename V::vf g0 = V::set1(g[t]);
    const float* p0 = xc + off_of[at0];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[r] = V::fma(g0, V::load(p0 + r * rs), acc[r]);
  }
  alignas(64) float lanes[V::L];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    V::store(lanes, V::add(acc[r], acc2[r]));
    for (int k = 0; k < kW; ++k) out[r * kW + k] += lanes[k];
  }
  return -1;
}
using PooledRowsFn = index_t (*)(const float*, index_t, const float*, const std::int64_t*, const index_t*,
                                 std::uint64_t, index_t, int, float*);
template <class V>
const std::array<PooledRowsFn, 8>& pooled_rows_table() {
  static constexpr std::array<PooledRowsFn, 8> t{pooled_rows<V, 1>, pooled_rows<V, 2>, pooled_rows<V, 3>,
                                                 pooled_rows<V, 4>, pooled_rows<V, 5>, pooled_rows<V, 6>,
                                                 pooled_rows<V, 7>, pooled_rows<V, 8>};
  return t;
}

inline void fill_zero(float* d, index_t n) {
  index_t i = 0;
  for (; i + W <= n; i += W) store(d + i, zero());
  if (i < n) store_mask(d + i, tail_mask(int(n - i)), zero());
}

inline void copy_n(float* d, const float* s, index_t n) {
  index_t i = 0;
  for (; i + W <= n; i += W) store(d + i, load(s + i));
  if (i < n) {
    const mask_t m = tail_mask(int(n - i));
    store_mask(d + i, m, load_mask(s + i, m));
  }
}

inline float sum_n(const float* s, index_t n) {
  vf a0 = zero(), a1 = zero(), a2 = zero(), a3 = zero();
  index_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    a0 = add(a0, load(s + i));
    a1 = add(a1, load(s + i + W));
    a2 = add(a2, load(s + i + 2 * W));
    a3 = add(a3, load(s + i + 3 * W));
  }
  a0 = add(a0, a2);
  a1 = add(a1, a3);
  for (; i + W <= n; i += W) a0 = add(a0, load(s + i));
  if (i < n) a1 = add(a1, load_mask(s + i, tail_mask(int(n - i))));
  return hsum(add(a0, a1));
}

// Output positions [lo, hi) of `out` whose input index o*stride + off lies in [0, size).
struct Span {
  index_t lo, hi;
};
inline Span valid_span(index_t out, index_t stride, index_t off, index_t size) {
  index_t lo = off >= 0 ? 0 : ceil_div(-off, stride);
  index_t hi = size - 1 - off < 0 ? 0 : (size - 1 - off) / stride + 1;
  lo = min_of(lo, out);
  hi = max_of(lo, min_of(hi, out));
  return {lo, hi};
}

bool is_pointwise(const Conv2dShape& s) {
  return s.kH == 1 && s.kW == 1 && s.sh == 1 && s.sw == 1 && s.ph == 0 && s.pw == 0;
}

// p + off elements, where the result may lie outside p's array: it is only used as the base
// of a masked load whose active lanes are inside the array. Integer arithmetic keeps the
// address computation itself well defined.
inline const float* offset_ptr(const float* p, index_t off) {
  return reinterpret_cast<const float*>(reinterpret_cast<std::uintptr_t>(p) +
                                        static_cast<std::uintptr_t>(off * index_t(sizeof(float))));
}

// Lanes [a, b) of a vector, 0 <= a <= b <= W.
inline mask_t lane_range(int a, int b) {
#if LAMINA_ISA_ID == 2
  return mask_t(tail_mask(b) & ~tail_mask(a));
#elif LAMINA_ISA_ID == 1
  return _mm256_andnot_si256(tail_mask(a), tail_mask(b));
#else
  return a <= 0 && b > 0;
#endif
}

// Unrolls output rows [oh0, oh1) of image xn (C x H x W) into col (K rows, row stride ld,
// column (oh - oh0)*OW + ow). For sw == 1 an output row of one col row is x's input row
// shifted by the kernel column, with zeros where that falls in the padding: each vector of
// it is one masked load (inactive lanes read as 0) and one store, with the masks worked out
// once per (kernel column, vector) and reused down the output rows. Other strides gather.
void im2col(const Conv2dShape& sh_, const float* xn, index_t oh0, index_t oh1, float* col,
            index_t ld) {
  // Locals, not loads through the reference: the vector stores may alias anything.
  const index_t C = sh_.C, H = sh_.H, Wd = sh_.W, kH = sh_.kH, kW = sh_.kW, OH = sh_.OH,
                OW = sh_.OW, sh = sh_.sh, sw = sh_.sw, ph = sh_.ph, pw = sh_.pw, dh = sh_.dh,
                dw = sh_.dw;
  const index_t nv = ceil_div(OW, index_t(W));  // vectors per output row
  const mask_t last = tail_mask(int(OW - (nv - 1) * W));
  float* dst = col;
  for (index_t c = 0; c < C; ++c) {
    const float* xc = xn + c * H * Wd;
    for (index_t ki = 0; ki < kH; ++ki) {
      const index_t ioff = ki * dh - ph;
      const Span rows = valid_span(OH, sh, ioff, H);
      const index_t r0 = max_of(oh0, rows.lo), r1 = max_of(r0, min_of(oh1, rows.hi));
      for (index_t kj = 0; kj < kW; ++kj, dst += ld) {
        const index_t joff = kj * dw - pw;
        const Span cols = valid_span(OW, sw, joff, Wd);
        const index_t lo = cols.lo, hi = cols.hi;
        // Output rows whose input row is padding.
        for (index_t oh = oh0; oh < r0; ++oh) fill_zero(dst + (oh - oh0) * OW, OW);
        for (index_t oh = r1; oh < oh1; ++oh) fill_zero(dst + (oh - oh0) * OW, OW);
        if (r0 == r1) continue;
        const float* xrow0 = xc + (r0 * sh + ioff) * Wd;  // input row of output row r0
        const index_t src_step = sh * Wd;
        float* d0 = dst + (r0 - oh0) * OW;
        if (sw == 1) {
          for (index_t v = 0; v < nv; ++v) {
            const index_t a = max_of<index_t>(lo - v * W, 0), b = min_of<index_t>(hi - v * W, W);
            const bool any = a < b;
            const mask_t m = lane_range(int(any ? a : 0), int(any ? b : 0));
            const mask_t ms = v + 1 < nv ? tail_mask(W) : last;
            const float* src = xrow0;
            float* d = d0 + v * W;
            for (index_t oh = r0; oh < r1; ++oh, d += OW, src += src_step)
              store_mask(d, ms, any ? load_mask(offset_ptr(src, joff + v * W), m) : zero());
          }
        } else {
          const index_t run = hi - lo;
          float* d = d0;
          const float* src = xrow0 + lo * sw + joff;
          for (index_t oh = r0; oh < r1; ++oh, d += OW, src += src_step) {
            fill_zero(d, lo);
            for (index_t t = 0; t < run; ++t) d[lo + t] = src[t * sw];
            fill_zero(d + hi, OW - hi);
          }
        }
      }
    }
  }
}

// The adjoint of im2col for output rows [oh0, oh1) when sw > 1 (col2im_rows handles sw == 1):
// adds col (K rows, row stride ld) onto the image gxn (C x H x W) at the pixels im2col read
// (padding entries are dropped), a strided scatter per (col row, output row).
void col2im_strided(const Conv2dShape& sh_, const float* col, index_t ld, index_t oh0,
                    index_t oh1, float* gxn) {
  const index_t C = sh_.C, H = sh_.H, Wd = sh_.W, kH = sh_.kH, kW = sh_.kW, OH = sh_.OH,
                OW = sh_.OW, sh = sh_.sh, sw = sh_.sw, ph = sh_.ph, pw = sh_.pw, dh = sh_.dh,
                dw = sh_.dw;
  for (index_t c = 0; c < C; ++c)
    for (index_t ki = 0; ki < kH; ++ki) {
      const index_t ioff = ki * dh - ph;
      const Span rows = valid_span(OH, sh, ioff, H);
      const index_t r0 = max_of(oh0, rows.lo), r1 = max_of(r0, min_of(oh1, rows.hi));
      for (index_t kj = 0; kj < kW; ++kj) {
        const index_t joff = kj * dw - pw;
        const Span cols = valid_span(OW, sw, joff, Wd);
        const index_t run = cols.hi - cols.lo;
        if (run == 0 || r0 == r1) continue;
        const float* g = col + ((c * kH + ki) * kW + kj) * ld + (r0 - oh0) * OW + cols.lo;
        float* d = gxn + c * H * Wd + (r0 * sh + ioff) * Wd + cols.lo * sw + joff;
        for (index_t oh = r0; oh < r1; ++oh, g += OW, d += sh * Wd)
          for (index_t t = 0; t < run; ++t) d[t * sw] += g[t];
      }
    }
}

// col2im for sw == 1, output-stationary: each vector of a grad_x row is the sum of the col
// runs im2col copied from it (one per kernel offset whose row lands there), loaded shifted
// by the kernel column under a lane mask, and is stored once. The read-modify-write of the
// scatter form stalls on small images (a masked load overlapping a just-stored neighbouring
// row waits for that store); here grad_x is written once per tile, or read once when
// `accumulate` (tiles of part of an image). A load may start up to W-1 floats before a col
// row's first valid value or end up to W-1 after its last, always under a mask that excludes
// those lanes (offset_ptr).

// One kernel column's contribution to a block of NV vectors of a grad_x row: the col row
// is read from `off` (relative to the col row's output-row start) under these lane masks.
struct Tap {
  index_t off;
  mask_t m[4];
  bool any[4];
};

template <int NV>
void col2im_rows_block(const Conv2dShape& sh_, const float* col, index_t ld, index_t oh0,
                       index_t oh1, index_t iw0, const Tap* taps, float* gxn, bool accumulate) {
  const index_t C = sh_.C, H = sh_.H, Wd = sh_.W, kH = sh_.kH, kW = sh_.kW, OW = sh_.OW,
                sh = sh_.sh, ph = sh_.ph, dh = sh_.dh;
  mask_t mstore[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) mstore[v] = tail_mask(int(min_of<index_t>(W, Wd - iw0 - v * W)));
  for (index_t c = 0; c < C; ++c) {
    const float* colc = col + c * kH * kW * ld;
    for (index_t ih = 0; ih < H; ++ih) {
      // Two accumulator sets (even / odd kernel column) halve the chain of dependent adds.
      vf acc0[NV], acc1[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc0[v] = acc1[v] = zero();
      auto gather = [&](vf* acc, const float* crow, const Tap& t) {
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v)
          if (t.any[v]) acc[v] = add(acc[v], load_mask(offset_ptr(crow, t.off + v * W), t.m[v]));
      };
      for (index_t ki = 0; ki < kH; ++ki) {
        const index_t t = ih + ph - ki * dh;  // = oh * sh for the output row reading row ih
        if (t < 0 || (sh != 1 && t % sh != 0)) continue;
        const index_t oh = sh == 1 ? t : t / sh;
        if (oh < oh0 || oh >= oh1) continue;
        const float* crow = colc + ki * kW * ld + (oh - oh0) * OW;
        index_t kj = 0;
        for (; kj + 2 <= kW; kj += 2) {
          gather(acc0, crow + kj * ld, taps[kj]);
          gather(acc1, crow + (kj + 1) * ld, taps[kj + 1]);
        }
        if (kj < kW) gather(acc0, crow + kj * ld, taps[kj]);
      }
      float* grow = gxn + (c * H + ih) * Wd + iw0;
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        vf r = add(acc0[v], acc1[v]);
        if (accumulate) r = add(r, load_mask(grow + v * W, mstore[v]));
        store_mask(grow + v * W, mstore[v], r);
      }
    }
  }
}

void col2im_rows(const Conv2dShape& s, const float* col, index_t ld, index_t oh0, index_t oh1,
                 float* gxn, bool accumulate) {
  constexpr index_t kBlock = 4;  // vectors of a grad_x row summed together
  std::vector<Tap> taps(static_cast<std::size_t>(s.kW));
  for (index_t iw0 = 0; iw0 < s.W; iw0 += kBlock * W) {
    const index_t nv = min_of<index_t>(kBlock, ceil_div(s.W - iw0, index_t(W)));
    for (index_t kj = 0; kj < s.kW; ++kj) {
      Tap& t = taps[static_cast<std::size_t>(kj)];
      const index_t joff = kj * s.dw - s.pw;  // iw = ow + joff
      const index_t a = max_of<index_t>(0, joff), b = min_of(s.W, s.OW + joff);
      t.off = iw0 - joff;
      for (int v = 0; v < kBlock; ++v) {
        const index_t v0 = iw0 + v * W;
        const index_t va = max_of(a, v0), vb = min_of(b, v0 + W);
        t.any[v] = v < nv && va < vb;
        t.m[v] = t.any[v] ? lane_range(int(va - v0), int(vb - v0)) : tail_mask(0);
      }
    }
    switch (nv) {
      case 1: col2im_rows_block<1>(s, col, ld, oh0, oh1, iw0, taps.data(), gxn, accumulate); break;
      case 2: col2im_rows_block<2>(s, col, ld, oh0, oh1, iw0, taps.data(), gxn, accumulate); break;
      case 3: col2im_rows_block<3>(s, col, ld, oh0, oh1, iw0, taps.data(), gxn, accumulate); break;
      default: col2im_rows_block<4>(s, col, ld, oh0, oh1, iw0, taps.data(), gxn, accumulate); break;
    }
  }
}

// ---- grad_w as dot products ------------------------------------------------------------
// C (M x N, ldc) (=|+=) A (M x L, row stride lda) * B (N x L, row stride ldb)^T.
// grad_w = grad_y * col^T reduces along the contiguous dimension of both operands, which the
// packed GEMM can only do after transposing one of them while packing. When the output is
// small (few channels) and the rows long, computing each entry as a dot product of two
// contiguous rows, TI x TJ entries at a time in vector registers, skips that packing; the
// price is one horizontal sum per entry, small when L >> W.
#if LAMINA_ISA_ID == 2
constexpr int kDotTI = 6, kDotTJ = 4;  // 24 accumulators + 4 B rows + 1 A row of 32 zmm
#elif LAMINA_ISA_ID == 1
constexpr int kDotTI = 3, kDotTJ = 3;  // 9 + 3 + 1 of 16 ymm
#else
constexpr int kDotTI = 4, kDotTJ = 4;
#endif

template <int TI, int TJ>
void dot_tile(index_t L, const float* a, index_t lda, const float* b, index_t ldb, float* c,
              index_t ldc, bool accumulate) {
  vf acc[TI][TJ];
#pragma GCC unroll 8
  for (int i = 0; i < TI; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < TJ; ++j) acc[i][j] = zero();
  index_t l = 0;
  for (; l + W <= L; l += W) {
    vf bv[TJ];
#pragma GCC unroll 8
    for (int j = 0; j < TJ; ++j) bv[j] = load(b + j * ldb + l);
#pragma GCC unroll 8
    for (int i = 0; i < TI; ++i) {
      const vf av = load(a + i * lda + l);
#pragma GCC unroll 8
      for (int j = 0; j < TJ; ++j) acc[i][j] = fma(av, bv[j], acc[i][j]);
    }
  }
  if (l < L) {
    const mask_t m = tail_mask(int(L - l));
    vf bv[TJ];
#pragma GCC unroll 8
    for (int j = 0; j < TJ; ++j) bv[j] = load_mask(b + j * ldb + l, m);
#pragma GCC unroll 8
    for (int i = 0; i < TI; ++i) {
      const vf av = load_mask(a + i * lda + l, m);
#pragma GCC unroll 8
      for (int j = 0; j < TJ; ++j) acc[i][j] = fma(av, bv[j], acc[i][j]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < TI; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < TJ; ++j) {
      const float t = hsum(acc[i][j]);
      c[i * ldc + j] = accumulate ? c[i * ldc + j] + t : t;
    }
}

using dot_fn = void (*)(index_t, const float*, index_t, const float*, index_t, float*, index_t,
                        bool);
template <std::size_t... I>
constexpr auto make_dot_table(std::index_sequence<I...>) {
  return std::array<dot_fn, sizeof...(I)>{&dot_tile<int(I / kDotTJ) + 1, int(I % kDotTJ) + 1>...};
}
// kDot[(ti - 1) * kDotTJ + tj - 1] computes a ti x tj tile.
const auto kDot = make_dot_table(std::make_index_sequence<kDotTI * kDotTJ>{});

void gemm_nt_dot(index_t M, index_t N, index_t L, const float* a, index_t lda, const float* b,
                 index_t ldb, float* c, index_t ldc, bool accumulate) {
  // A's TI rows stay in L1 while B's rows stream past.
  for (index_t i0 = 0; i0 < M; i0 += kDotTI) {
    const int ti = int(min_of<index_t>(kDotTI, M - i0));
    for (index_t j0 = 0; j0 < N; j0 += kDotTJ) {
      const int tj = int(min_of<index_t>(kDotTJ, N - j0));
      kDot[(ti - 1) * kDotTJ + tj - 1](L, a + i0 * lda, lda, b + j0 * ldb, ldb,
                                        c + i0 * ldc + j0, ldc, accumulate);
    }
  }
}

// How a thread cuts its work into GEMM tiles.
struct Tiling {
  index_t rc;  // output rows per tile when a tile is (part of) one image
  index_t nb;  // images per tile when images are batched (1: never)
};

// per_thread: about how many images one thread handles.
Tiling make_tiling(const Conv2dShape& s, index_t per_thread) {
  const index_t K = max_of<index_t>(s.C * s.kH * s.kW, 1), P = s.OH * s.OW;
  Tiling t;
  t.rc = max_of<index_t>(1, min_of<index_t>(s.OH, kColCapFloats / (K * s.OW)));
  t.nb = 1;
  if (!is_pointwise(s) && P < kTargetCols && K * P <= kColCapFloats / 2) {
    const index_t nb_max =
        max_of<index_t>(1, min_of<index_t>(kColCapFloats / (K * P), ceil_div(kTargetCols, P)));
    // Even tiles: a thread's images in as few tiles as the cap allows, of equal size.
    const index_t per = max_of<index_t>(per_thread, 1);
    const index_t tiles = ceil_div(per, nb_max);
    t.nb = ceil_div(per, tiles);
  }
  return t;
}

// y (O x ncols, row stride ldy) = w (O x K) * bm + epilogue, in blocks of at most 2 MR output
// channels: the GEMM reads a row-major B in place, unpacked, when M is at most two register
// tiles (gemm.cpp), and a column tile feeds this one product only, so packing it would be
// pure overhead (measured: 5-13% of the forward of 32- to 128-channel 3x3 layers).
void forward_gemm(index_t O, index_t ncols, index_t K, const float* w, MatRef bm, float* y,
                  index_t ldy, const GemmEpilogue& ep, int gemm_threads) {
  constexpr index_t kRowBlock = 2 * gemm_config::MR;
  for (index_t o0 = 0; o0 < O; o0 += kRowBlock) {
    GemmEpilogue e = ep;
    if (e.bias_mode == Bias::per_row) e.bias = ep.bias + o0;
    sgemm(min_of(kRowBlock, O - o0), ncols, K, MatRef{w + o0 * K, K, 1}, bm, y + o0 * ldy, ldy,
          e, gemm_threads);
  }
}

// Forward over the (image, output row) pairs [u0, u1) (pair u = n*OH + oh).
void forward_range(const Conv2dShape& s, const Tiling& tl, index_t u0, index_t u1,
                   const float* x, const float* w, const GemmEpilogue& ep, float* y,
                   int gemm_threads) {
  const index_t K = s.C * s.kH * s.kW, P = s.OH * s.OW, OW = s.OW, OH = s.OH, O = s.O;
  const index_t xsz = s.C * s.H * s.W;
  const bool direct = is_pointwise(s);
  index_t u = u0;
  while (u < u1) {
    const index_t n = u / OH, oh0 = u % OH;
    if (tl.nb > 1 && oh0 == 0 && u + 2 * OH <= u1) {
      // Several whole images: col (K x nb*P) and a staging y tile (O x nb*P).
      const index_t cnt = min_of<index_t>(tl.nb, (u1 - u) / OH), ncols = cnt * P;
      float* col = thread_buffer(kSlotTile, workspace_floats(K + O, ncols));
      float* out = col + K * ncols;
      for (index_t b = 0; b < cnt; ++b) im2col(s, x + (n + b) * xsz, 0, OH, col + b * P, ncols);
      forward_gemm(O, ncols, K, w, MatRef{col, ncols, 1}, out, ncols, ep, gemm_threads);
      for (index_t b = 0; b < cnt; ++b)
        for (index_t o = 0; o < O; ++o) copy_n(y + ((n + b) * O + o) * P, out + o * ncols + b * P, P);
      u += cnt * OH;
      continue;
    }
    const index_t oh1 = min_of(min_of(oh0 + (direct ? OH : tl.rc), OH), oh0 + (u1 - u));
    const index_t ncols = (oh1 - oh0) * OW;
    const float* xn = x + n * xsz;
    MatRef bm{xn + oh0 * OW, s.H * s.W, 1};  // pointwise: x[n] is already (C x P)
    if (!direct) {
      float* col = thread_buffer(kSlotTile, workspace_floats(K, ncols));
      im2col(s, xn, oh0, oh1, col, ncols);
      bm = MatRef{col, ncols, 1};
    }
    forward_gemm(O, ncols, K, w, bm, y + n * O * P + oh0 * OW, P, ep, gemm_threads);
    u += oh1 - oh0;
  }
}

// How grad_w = sum_n grad_y[n] * col[n]^T is computed (see plan_backward).
enum class GradW : int { gemm = 1, dot = 2 };

struct BackwardPlan {
  Tiling tl;
  GradW method;
};

// grad_w by dot products (gemm_nt_dot) when there are few output channels, whose rows of
// grad_y then stay in L1 while col streams past, and the tiles are long enough (L >= 8 W)
// for the horizontal sums not to matter; otherwise the packed GEMM, whose register tile
// reuses each loaded value more (measured on the LeNet / VGG-like layers of the benchmarks).
// gemm_threaded: images are processed one after another with threads inside the GEMMs
// (batch smaller than the thread count), where only the GEMM runs in parallel.
BackwardPlan plan_backward(const Conv2dShape& s, index_t per_thread, bool gemm_threaded) {
  BackwardPlan pl;
  pl.tl = make_tiling(s, per_thread);
  const index_t P = s.OH * s.OW;
  const index_t L = pl.tl.nb > 1 ? pl.tl.nb * P : min_of(P, pl.tl.rc * s.OW);
  pl.method = (s.O <= 32 && L >= 8 * W && !gemm_threaded) ? GradW::dot : GradW::gemm;
  const int forced = conv_testing_grad_w_method().load(std::memory_order_relaxed);
  if (forced == int(GradW::gemm) || forced == int(GradW::dot)) pl.method = GradW(forced);
  return pl;
}

// Backward over whole images [n0, n1) and input channels [c0, c1) (rows r0 = c0*kH*kW ..
// of col, columns r0.. of grad_w): grad_w_acc (O x K, row stride K) and grad_b_acc (O, when
// not null) are overwritten by the first contribution, then accumulated; grad_x (may be null)
// is written for those channels. gemm_threads as for sgemm.
void backward_range(const Conv2dShape& s, const BackwardPlan& pl, index_t n0, index_t n1,
                    index_t c0, index_t c1, const float* x, const float* w, const float* gy,
                    float* gx, float* grad_w_acc, float* grad_b_acc, int gemm_threads) {
  const index_t K = s.C * s.kH * s.kW, P = s.OH * s.OW, OW = s.OW, OH = s.OH, O = s.O;
  const index_t xsz = s.C * s.H * s.W, ysz = O * P, HW = s.H * s.W;
  // This call's channels as a convolution of its own: col has Kc rows.
  Conv2dShape sc = s;
  sc.C = c1 - c0;
  const index_t Kc = sc.C * s.kH * s.kW, r0 = c0 * s.kH * s.kW;
  x += c0 * HW;
  if (gx) gx += c0 * HW;
  if (grad_w_acc) grad_w_acc += r0;  // null: grad_w is computed elsewhere (no im2col needed)
  const MatRef wT{w + r0, 1, K};  // w^T rows r0.. (Kc x O)
  const GemmEpilogue overwrite;
  GemmEpilogue acc;  // grad_w: overwritten by the first GEMM, then accumulated
  acc.beta = 0.0f;
  bool first = true;
  // grad_w_acc (=|+=) gyt (O x L, row stride ldg) * col (Kc x L, row stride ldc)^T.
  auto grad_w_tile = [&](const float* gyt, index_t ldg, const float* col, index_t ldc, index_t L) {
    if (!grad_w_acc) return;
    if (pl.method == GradW::dot) {
      gemm_nt_dot(O, Kc, L, gyt, ldg, col, ldc, grad_w_acc, K, !first);
    } else {
      sgemm(O, Kc, L, MatRef{gyt, ldg, 1}, MatRef{col, 1, ldc}, grad_w_acc, K, acc, gemm_threads);
    }
    acc.beta = 1.0f;
    first = false;
  };

  if (grad_b_acc)
    for (index_t n = n0; n < n1; ++n)
      for (index_t o = 0; o < O; ++o) {
        const float t = sum_n(gy + n * ysz + o * P, P);
        grad_b_acc[o] = n == n0 ? t : grad_b_acc[o] + t;
      }

  if (is_pointwise(s)) {  // col[n] is x[n] itself (C x P)
    for (index_t n = n0; n < n1; ++n) {
      grad_w_tile(gy + n * ysz, P, x + n * xsz, P, P);
      if (gx) sgemm(Kc, P, O, wT, MatRef{gy + n * ysz, P, 1}, gx + n * xsz, P, overwrite, gemm_threads);
    }
    return;
  }

  // One buffer per thread: the tile's columns (reused for grad_col), then grad_y staged for
  // multi-image tiles.
  const index_t nb = min_of(pl.tl.nb, n1 - n0);
  const index_t max_cols = nb > 1 ? nb * P : min_of(P, pl.tl.rc * OW);
  const index_t tile_floats = Kc * max_cols, stage_floats = nb > 1 ? O * max_cols : 0;
  float* tile = thread_buffer(kSlotTile, workspace_floats(Kc + (nb > 1 ? O : 0), max_cols));
  float* gyt = tile + tile_floats;
  // grad_x of one image from its grad_col (rows oh0..oh1, row stride ld); `whole`: the tile
  // covers the image, which is then written without being zeroed first.
  auto grad_x_from_col = [&](const float* gcol, index_t ld, index_t oh0, index_t oh1, float* gxn,
                             bool whole) {
    if (s.sw == 1) {
      col2im_rows(sc, gcol, ld, oh0, oh1, gxn, !whole);
    } else {
      if (whole) fill_zero(gxn, sc.C * HW);
      col2im_strided(sc, gcol, ld, oh0, oh1, gxn);
    }
  };

  index_t n = n0;
  while (n < n1) {
    const index_t cnt = min_of(nb, n1 - n);
    if (cnt > 1) {
      // Several whole images side by side: L = cnt*P columns, grad_y staged as (O x L).
      const index_t L = cnt * P;
      for (index_t b = 0; b < cnt; ++b) {
        if (grad_w_acc) im2col(sc, x + (n + b) * xsz, 0, OH, tile + b * P, L);
        for (index_t o = 0; o < O; ++o) copy_n(gyt + o * L + b * P, gy + ((n + b) * O + o) * P, P);
      }
      grad_w_tile(gyt, L, tile, L, L);
      if (gx) {
        sgemm(Kc, L, O, wT, MatRef{gyt, L, 1}, tile, L, overwrite, gemm_threads);  // grad_col
        for (index_t b = 0; b < cnt; ++b) grad_x_from_col(tile + b * P, L, 0, OH, gx + (n + b) * xsz, true);
      }
      n += cnt;
      continue;
    }
    // One image, in chunks of output rows.
    const float* xn = x + n * xsz;
    float* gxn = gx ? gx + n * xsz : nullptr;
    const bool whole = pl.tl.rc >= OH;  // one tile covers the image
    if (gxn && !whole) fill_zero(gxn, sc.C * HW);
    for (index_t oh0 = 0; oh0 < OH; oh0 += pl.tl.rc) {
      const index_t oh1 = min_of(oh0 + pl.tl.rc, OH), L = (oh1 - oh0) * OW;
      if (grad_w_acc) im2col(sc, xn, oh0, oh1, tile, L);
      const float* gyc = gy + n * ysz + oh0 * OW;  // (O x L), row stride P
      grad_w_tile(gyc, P, tile, L, L);
      if (gxn) {
        sgemm(Kc, L, O, wT, MatRef{gyc, P, 1}, tile, L, overwrite, gemm_threads);  // grad_col
        grad_x_from_col(tile, L, oh0, oh1, gxn, whole);
      }
    }
    ++n;
  }
}

}  // namespace

void conv2d(const Conv2dShape& s, const float* x, const float* w, const float* b,
                    bool relu, float* y) {
  const index_t K = s.C * s.kH * s.kW, P = s.OH * s.OW;
  if (s.N <= 0 || s.O <= 0 || P <= 0) return;
  GemmEpilogue ep;
  ep.bias = b;
  ep.bias_mode = b ? Bias::per_row : Bias::none;
  ep.relu = relu;

  if (const int m = winograd::forward_tile(s)) {
    winograd::conv2d(s, m, x, w, b, relu, y);
    return;
  }
  const double flops = 2.0 * double(s.N) * s.O * P * max_of<index_t>(K, 1) + double(s.N) * K * P;
  const int nt = threads_for(flops, kMinFlopsPerThread);
  const index_t units = s.N * s.OH;  // (image, output row) pairs
  if (tuning().conv_direct && direct::eligible(s)) {
    const auto rows = direct::kForward[static_cast<std::size_t>(s.O - 1)];
    parallel_team(nt, [&](int tid, int team) {
      const index_t u0 = units * tid / team, u1 = units * (tid + 1) / team;
      float* xp = thread_buffer(kSlotTile, workspace_floats(1, direct::image_floats(s)));
      for (index_t u = u0; u < u1;) {  // the rows of one image at a time
        const index_t n = u / s.OH, oh0 = u % s.OH, oh1 = min_of(s.OH, oh0 + (u1 - u));
        direct::pad_planes(s, x + n * s.C * s.H * s.W, xp);
        rows(s, xp, w, b, relu, y + n * s.O * P, oh0, oh1);
        u += oh1 - oh0;
      }
    });
    return;
  }
  if (tuning().conv_direct && direct::lanes_eligible(s)) {
    parallel_team(nt, [&](int tid, int team) {
      const index_t u0 = units * tid / team, u1 = units * (tid + 1) / team;
      const index_t img = direct::image_floats(s);
      float* xp = thread_buffer(kSlotTile, workspace_floats(1, img + K * W));
      float* wT = xp + img;
      direct::transpose_weights(s, w, wT);
      for (index_t u = u0; u < u1;) {
        const index_t n = u / s.OH, oh0 = u % s.OH, oh1 = min_of(s.OH, oh0 + (u1 - u));
        direct::pad_planes(s, x + n * s.C * s.H * s.W, xp);
        direct::lanes_forward_rows(s, xp, wT, b, relu, y + n * s.O * P, oh0, oh1);
        u += oh1 - oh0;
      }
    });
    return;
  }
  if (nt <= 1 || units < nt) {
    // One thread, or too few rows to share (batch 1 with one output row): thread the GEMM.
    forward_range(s, make_tiling(s, s.N), 0, units, x, w, ep, y, nt > 1 ? 0 : 1);
    return;
  }
  const Tiling tl = make_tiling(s, ceil_div(s.N, index_t(nt)));
  parallel_team(nt, [&](int tid, int team) {
    // Cut at image boundaries when the batch splits evenly, else at a row.
    const index_t u0 = units * tid / team, u1 = units * (tid + 1) / team;
    forward_range(s, tl, u0, u1, x, w, ep, y, 1);
  });
}

void conv2d_backward(const Conv2dShape& s, const float* x, const float* w, const float* grad_y,
                     float* grad_x, float* grad_w, float* grad_b) {
  const index_t K = s.C * s.kH * s.kW, P = s.OH * s.OW, O = s.O;
  const index_t xsz = s.C * s.H * s.W;
  if (O <= 0) {  // grad_w, grad_b empty; nothing flows back
    if (grad_x) fill_zero(grad_x, s.N * xsz);
    return;
  }
  if (s.N <= 0 || P <= 0) {
    fill_zero(grad_w, O * K);
    fill_zero(grad_b, O);
    if (grad_x) fill_zero(grad_x, s.N * xsz);
    return;
  }
  // Winograd for grad_w and / or grad_x where chosen (winograd.h); the rest below. A
  // Winograd grad_w with a grad_x that must stay on the GEMM path (padding > 2) leaves both there.
  const int mw = winograd::backward_weight_tile(s), mx = grad_x ? winograd::backward_data_tile(s) : 0;
  if (mw && (!grad_x || mx)) winograd::conv2d_backward_weight(s, mw, x, grad_y, grad_w, grad_b);
  if (mx) {
    if (!mw) conv2d_backward(s, x, w, grad_y, nullptr, grad_w, grad_b);  // grad_w, grad_b only
    winograd::conv2d_backward_data(s, mx, w, grad_y, grad_x);
  }
  if (mx || (mw && !grad_x)) return;
  const int nt = threads_for(6.0 * double(s.N) * O * P * max_of<index_t>(K, 1), kMinFlopsPerThread);
  const bool use_direct = grad_x == nullptr && tuning().conv_direct && direct::eligible(s);
  const bool use_lanes = !use_direct && tuning().conv_direct && direct::lanes_eligible(s);
  // The direct grad_w / grad_b of images [n0, n1) (overwritten), conv_direct.h.
  auto direct_range = [&](index_t n0, index_t n1, float* gw, float* gb) {
    const index_t img = direct::image_floats(s);
    const index_t vacc_at = round_up(img, index_t(16));  // (the accumulators on a cache line)
    float* xp = thread_buffer(kSlotTile, workspace_floats(1, vacc_at + direct::vacc_floats(s)));
    direct::grad_w(s, x + n0 * xsz, n1 - n0, grad_y + n0 * O * P, xp, xp + vacc_at, gw, gb);
  };

  if (use_direct && nt <= 1) {
    direct_range(0, s.N, grad_w, grad_b);
    return;
  }
  // Channels in lanes: grad_w / grad_b of images [n0, n1) directly, grad_x (if wanted) by the
  // GEMM path without its grad_w (and so without im2col).
  auto lanes_range = [&](const BackwardPlan& pl, index_t n0, index_t n1, float* gw, float* gb, int gemm_threads) {
    float* scratch = thread_buffer(kSlotTile, workspace_floats(1, direct::lanes_scratch_floats(s)));
    direct::lanes_grad_w(s, x + n0 * xsz, n1 - n0, grad_y + n0 * O * P, scratch, gw, gb);
    if (grad_x && direct::lanes_grad_x_eligible(s))
      direct::lanes_grad_x(s, w, n1 - n0, grad_y + n0 * O * P, scratch, grad_x + n0 * xsz);
    else if (grad_x)
      backward_range(s, pl, n0, n1, 0, s.C, x, w, grad_y, grad_x, nullptr, nullptr, gemm_threads);
  };
  if (use_lanes && nt <= 1) {
    lanes_range(plan_backward(s, s.N, false), 0, s.N, grad_w, grad_b, 1);
    return;
  }
  const bool by_images = use_direct || use_lanes || s.N % nt == 0 || s.N >= 4 * nt;  // imbalance under 1/4
  const bool by_channels = !by_images && (s.C % nt == 0 || s.C >= 2 * nt);
  if (nt <= 1 || (!by_images && !by_channels)) {
    // One thread, or too few images and channels to share: threads inside the GEMMs.
    backward_range(s, plan_backward(s, s.N, nt > 1), 0, s.N, 0, s.C, x, w, grad_y, grad_x,
                   grad_w, grad_b, nt > 1 ? 0 : 1);
    return;
  }
  if (by_channels) {
    // Each thread: every image, its own input channels, so its own columns of grad_w and
    // channels of grad_x; nothing to reduce. grad_b on thread 0.
    const BackwardPlan pl = plan_backward(s, s.N, false);
    parallel_team(nt, [&](int tid, int team) {
      const index_t c0 = s.C * tid / team, c1 = s.C * (tid + 1) / team;
      if (c1 > c0 || tid == 0)
        backward_range(s, pl, 0, s.N, c0, c1, x, w, grad_y, grad_x, grad_w,
                       tid == 0 ? grad_b : nullptr, 1);
    });
    return;
  }

  // Each thread: whole images, its own grad_w / grad_b partial sums, reduced at the end.
  const BackwardPlan pl = plan_backward(s, ceil_div(s.N, index_t(nt)), false);
  const index_t acc_len = O * K + O;

  std::vector<float*> partial(static_cast<std::size_t>(nt), nullptr);
  // A thread that fails (out of memory for its workspace) still reaches the barrier between
  // the two phases; the reduction is then skipped and the error rethrown (parallel.h).
  parallel_team_then(
      nt,
      [&](int tid, int team) {
        float* acc = thread_buffer(kSlotPartial, workspace_floats(O, K + 1));
        partial[static_cast<std::size_t>(tid)] = acc;
        const index_t n0 = s.N * tid / team, n1 = s.N * (tid + 1) / team;
        if (n0 == n1) fill_zero(acc, acc_len);
        else if (use_direct) direct_range(n0, n1, acc, acc + O * K);
        else if (use_lanes) lanes_range(pl, n0, n1, acc, acc + O * K, 1);
        else backward_range(s, pl, n0, n1, 0, s.C, x, w, grad_y, grad_x, acc, acc + O * K, 1);
      },
      [&](int tid, int team) { reduce_partials(partial, tid, team, O * K, O, grad_w, grad_b); });
}

namespace {
bool pooled_vec(const Conv2dShape& s) { return s.dw == 1 && s.kW <= W; }

// grad_w / grad_b (added to) of planes of images [n0, n1), from the pooled gradient and the
// pool's indices (conv2d_backward_pooled); off_of: each conv output cell's window start in
// the image copy (xpad) for the vector path. Returns the position in gp / idx of the first
// index outside the conv output plane, or -1.
index_t pooled_grad_images(const Conv2dShape& s, index_t P, const float* x, const float* gp,
                           const std::int64_t* idx, index_t n0, index_t n1, float* gw, float* gb,
                           const index_t* off_of, float* xpad) {
  const index_t C = s.C, O = s.O, kH = s.kH, kW = s.kW;
  const auto plane = static_cast<std::uint64_t>(s.OH * s.OW);
  // The vector path (kW <= W adjacent taps): a row of taps per vector, kH rows in registers
  // (blocks of 8), read from the image's (zero-padded) copy in xpad, so every tap of a window
  // and every lane past kW is inside the buffer. Otherwise scalar, with bounds checks.
  const bool vec = pooled_vec(s), padded = vec && (s.ph > 0 || s.pw > 0);
  const index_t Hr = vec ? s.H + 2 * s.ph : s.H, Wr = vec ? s.W + 2 * s.pw : s.W;
  const auto& rows = kW <= 8 ? pooled_rows_table<Rows8>() : pooled_rows_table<RowsW>();
  for (index_t n = n0; n < n1; ++n) {
    const float* xn = x + n * C * s.H * s.W;
    if (vec) {  // the image (zero-padded) in the thread's buffer, whose slack the row loads may read
      if (padded) fill_zero(xpad, C * Hr * Wr + kPooledSlack);
      else fill_zero(xpad + C * Hr * Wr, kPooledSlack);
      for (index_t c = 0; c < C; ++c)
        for (index_t r = 0; r < s.H; ++r)
          std::copy(xn + (c * s.H + r) * s.W, xn + (c * s.H + r + 1) * s.W,
                    xpad + (c * Hr + r + s.ph) * Wr + s.pw);
      xn = xpad;
    }
    for (index_t o = 0; o < O; ++o) {
      const index_t pl = (n * O + o) * P;
      const float* g = gp + pl;
      if (!vec)
        for (index_t q = 0; q < P; ++q)
          if (static_cast<std::uint64_t>(idx[pl + q]) >= plane) return pl + q;
      // Every pooled cell contributes, a gradient of 0 (a ReLU-masked cell) too: NaN or inf
      // in x under any pooled cell's window reaches grad_w.
      vf bs = zero();
      index_t q = 0;
      for (; q + W <= P; q += W) bs = add(bs, load(g + q));
      float bsum = hsum(bs);
      for (; q < P; ++q) bsum += g[q];
      gb[o] += bsum;
      for (index_t c = 0; c < C; ++c) {
        const float* xc = xn + c * Hr * Wr;
        float* wc = gw + (o * C + c) * kH * kW;
        if (vec) {
          for (index_t ky0 = 0; ky0 < kH; ky0 += 8) {
            const index_t bad = rows[min_of<index_t>(8, kH - ky0) - 1](
                xc + ky0 * s.dh * Wr, s.dh * Wr, g, idx + pl, off_of, plane, P, static_cast<int>(kW), wc + ky0 * kW);
            if (bad >= 0) return pl + bad;
          }
          continue;
        }
        for (index_t t = 0; t < P; ++t) {
          const index_t oy = idx[pl + t] / s.OW, ox = idx[pl + t] % s.OW;
          for (index_t ky = 0; ky < kH; ++ky) {
            const index_t iy = oy * s.sh - s.ph + ky * s.dh;
            if (iy < 0 || iy >= s.H) continue;
            for (index_t kx = 0; kx < kW; ++kx) {
              const index_t ix = ox * s.sw - s.pw + kx * s.dw;
              if (ix >= 0 && ix < s.W) wc[ky * kW + kx] += g[t] * xc[iy * s.W + ix];
            }
          }
        }
      }
    }
  }
  return -1;
}
}  // namespace

index_t conv2d_backward_pooled(const Conv2dShape& s, index_t P, const float* x, const float* gp,
                               const std::int64_t* idx, float* grad_w, float* grad_b) {
  const index_t O = s.O, K = s.C * s.kH * s.kW;
  fill_zero(grad_w, O * K);
  fill_zero(grad_b, O);
  if (s.N <= 0 || P <= 0) return -1;
  // Work: the contributions (at most one per pooled cell) times the taps.
  const int nt = threads_for(2.0 * double(s.N) * O * P * max_of<index_t>(K, 1), kMinFlopsPerThread);
  // Each output cell's input offset (its window's first tap) for the vector path, else the
  // cell itself: no division per contribution.
  const index_t plane = s.OH * s.OW;
  std::vector<index_t> off_of(static_cast<std::size_t>(plane));
  const bool vec = pooled_vec(s);
  const index_t Wr = vec ? s.W + 2 * s.pw : s.W, pad_floats = s.C * (s.H + 2 * s.ph) * Wr + kPooledSlack;
  for (index_t oy = 0, i = 0; oy < s.OH; ++oy)
    for (index_t ox = 0; ox < s.OW; ++ox, ++i) off_of[i] = vec ? oy * s.sh * Wr + ox * s.sw : i;
  // The image copy, in the GEMM's second slot (no GEMM runs here).
  auto xpad = [&] { return vec ? thread_buffer(1, workspace_floats(1, pad_floats)) : nullptr; };
  if (nt <= 1)
    return pooled_grad_images(s, P, x, gp, idx, 0, s.N, grad_w, grad_b, off_of.data(), xpad());
  std::vector<float*> partial(static_cast<std::size_t>(nt), nullptr);
  std::vector<index_t> bad(static_cast<std::size_t>(nt), -1);
  parallel_team_then(
      nt,
      [&](int tid, int team) {
        float* acc = thread_buffer(kSlotPartial, workspace_floats(O, K + 1));
        partial[static_cast<std::size_t>(tid)] = acc;
        fill_zero(acc, O * K + O);
        const auto [n0, n1] = split_range(s.N, team, tid);
        bad[static_cast<std::size_t>(tid)] =
            pooled_grad_images(s, P, x, gp, idx, n0, n1, acc, acc + O * K, off_of.data(), xpad());
      },
      [&](int tid, int team) { reduce_partials(partial, tid, team, O * K, O, grad_w, grad_b); });
  for (index_t b : bad)
    if (b >= 0) return b;  // (threads hold increasing images: the first is the lowest)
  return -1;
}

ConvAlgorithms conv2d_algorithms(const Conv2dShape& s) {
  static const char* const kWino[] = {"gemm", "", "winograd2", "", "winograd4"};
  ConvAlgorithms a{};
  const bool direct_fwd = tuning().conv_direct && (direct::eligible(s) || direct::lanes_eligible(s));
  const int mf = winograd::forward_tile(s), mb = winograd::backward_data_tile(s);
  a.forward = mf ? kWino[mf] : direct_fwd ? "direct" : "gemm";
  const bool lanes = tuning().conv_direct && direct::lanes_eligible(s);
  a.grad_x = mb ? kWino[mb] : (lanes && direct::lanes_grad_x_eligible(s)) ? "direct" : "gemm";
  // grad_w: the direct kernels when conv2d_backward would pick them (without grad_x, the
  // plain direct one; with, the channels-in-lanes one). Winograd's needs grad_x on Winograd
  // too, or none (as profiled: with grad_x).
  const int mw = winograd::backward_weight_tile(s);
  a.grad_w = mw && mb ? kWino[mw]
             : tuning().conv_direct && (direct::eligible(s) || direct::lanes_eligible(s)) ? "direct" : "gemm";
  return a;
}

void winograd_filter_transform(int m, index_t O, index_t C, const float* w, bool flipped, float* U) {
  winograd::filter_transform(m, O, C, w, flipped, U);
}
void winograd_input_transform(const Conv2dShape& s, int m, const float* x, float* V) {
  winograd::input_transform(s, m, x, V);
}
void winograd_output_transform(const Conv2dShape& s, int m, const float* M, const float* b, bool relu,
                               float* y) {
  winograd::output_transform(s, m, M, b, relu, y);
}

}  // namespace lamina::cpu::LAMINA_ISA_NS
