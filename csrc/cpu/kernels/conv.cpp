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
// still make GEMMs of a few hundred columns.
//
// Memory: the column matrix is never built for the whole batch, nor for a whole image when
// that is large. Each thread owns one reusable buffer (workspace slot 2) holding its tile's
// columns (K x ncols) and staging (O x ncols), with K * ncols <= kColCapFloats (512 KiB) unless
// a single output row is bigger (then ncols = OW); the backward pass reuses the columns for
// grad_col and adds per-thread grad_w / grad_b partial sums (slot 3, O*K + O floats). Extra
// memory of one call <= threads * 4 bytes * ((K + O) * max(kColCapFloats / K, OW) + O*K + O);
// e.g. 2 * (512 KiB + 128 KiB + 72 KiB) for the (64, 32, 16, 16) -> 64, 3x3 layer.
//
// Threads: each thread takes a contiguous share of the (image, output row) pairs, so a batch
// splits by images and a single image by rows (forward); the backward splits whole images
// with per-thread grad_w partials reduced at the end, or, with fewer images than threads,
// threads inside the GEMMs. Small problems stay on one thread.
#include <vector>

#include "lamina/conv.h"
#include "lamina/cpu/gemm_config.h"
#include "lamina/cpu/simd.h"
#include "lamina/gemm.h"
#include "workspace.h"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace lamina::cpu::LAMINA_ISA_NS {
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
  vf a0 = zero(), a1 = zero();
  index_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    a0 = add(a0, load(s + i));
    a1 = add(a1, load(s + i + W));
  }
  for (; i + W <= n; i += W) a0 = add(a0, load(s + i));
  if (i < n) a1 = add(a1, load_mask(s + i, tail_mask(int(n - i))));
  return hsum(add(a0, a1));
}

// A run of n floats as full vectors plus one masked tail, worked out once per kernel column
// and reused for every output row.
struct Run {
  index_t full;  // number of full vectors
  mask_t tail;
  bool has_tail;
  explicit Run(index_t n)
      : full(n / W), tail(tail_mask(int(n % W))), has_tail(n % W != 0) {}
};

inline void copy_run(float* d, const float* s, const Run& r) {
  for (index_t v = 0; v < r.full; ++v) store(d + v * W, load(s + v * W));
  if (r.has_tail) {
    const index_t o = r.full * W;
    store_mask(d + o, r.tail, load_mask(s + o, r.tail));
  }
}

inline void add_run(float* d, const float* s, const Run& r) {
  for (index_t v = 0; v < r.full; ++v) store(d + v * W, add(load(d + v * W), load(s + v * W)));
  if (r.has_tail) {
    const index_t o = r.full * W;
    store_mask(d + o, r.tail, add(load_mask(d + o, r.tail), load_mask(s + o, r.tail)));
  }
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

// Unrolls output rows [oh0, oh1) of image xn (C x H x W) into col (K rows, row stride ld,
// column (oh - oh0)*OW + ow). Each (row of col, output row) is a zero prefix, a run read from
// one input row (vector copies when sw == 1) and a zero suffix; the bounds and the tail mask
// are worked out once per kernel column, so the per-row work is the copy itself.
void im2col(const Conv2dShape& sh_, const float* xn, index_t oh0, index_t oh1, float* col,
            index_t ld) {
  // Locals, not loads through the reference: the vector stores may alias anything.
  const index_t C = sh_.C, H = sh_.H, Wd = sh_.W, kH = sh_.kH, kW = sh_.kW, OH = sh_.OH,
                OW = sh_.OW, sh = sh_.sh, sw = sh_.sw, ph = sh_.ph, pw = sh_.pw, dh = sh_.dh,
                dw = sh_.dw;
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
        const index_t lo = cols.lo, run = cols.hi - cols.lo;
        // Rows whose input row is padding, and the padding columns of the others.
        for (index_t oh = oh0; oh < r0; ++oh) fill_zero(dst + (oh - oh0) * OW, OW);
        for (index_t oh = r1; oh < oh1; ++oh) fill_zero(dst + (oh - oh0) * OW, OW);
        if (r0 == r1) continue;
        if (run == 0) {
          for (index_t oh = r0; oh < r1; ++oh) fill_zero(dst + (oh - oh0) * OW, OW);
          continue;
        }
        if (lo > 0 || run < OW)
          for (index_t oh = r0; oh < r1; ++oh) {
            float* d = dst + (oh - oh0) * OW;
            fill_zero(d, lo);
            fill_zero(d + lo + run, OW - lo - run);
          }
        float* d = dst + (r0 - oh0) * OW + lo;
        const float* src = xc + (r0 * sh + ioff) * Wd + lo * sw + joff;
        const index_t src_step = sh * Wd;
        if (sw == 1) {
          const Run r(run);
          for (index_t oh = r0; oh < r1; ++oh, d += OW, src += src_step) copy_run(d, src, r);
        } else {
          for (index_t oh = r0; oh < r1; ++oh, d += OW, src += src_step)
            for (index_t t = 0; t < run; ++t) d[t] = src[t * sw];
        }
      }
    }
  }
}

// The adjoint of im2col for output rows [oh0, oh1): adds col (K rows, row stride ld) onto
// the image gxn (C x H x W) at the pixels im2col read (padding entries are dropped).
void col2im(const Conv2dShape& sh_, const float* col, index_t ld, index_t oh0, index_t oh1,
            float* gxn) {
  const index_t C = sh_.C, H = sh_.H, Wd = sh_.W, kH = sh_.kH, kW = sh_.kW, OH = sh_.OH,
                OW = sh_.OW, sh = sh_.sh, sw = sh_.sw, ph = sh_.ph, pw = sh_.pw, dh = sh_.dh,
                dw = sh_.dw;
  const float* src_row = col;
  for (index_t c = 0; c < C; ++c) {
    float* gc = gxn + c * H * Wd;
    for (index_t ki = 0; ki < kH; ++ki) {
      const index_t ioff = ki * dh - ph;
      const Span rows = valid_span(OH, sh, ioff, H);
      const index_t r0 = max_of(oh0, rows.lo), r1 = max_of(r0, min_of(oh1, rows.hi));
      for (index_t kj = 0; kj < kW; ++kj, src_row += ld) {
        const index_t joff = kj * dw - pw;
        const Span cols = valid_span(OW, sw, joff, Wd);
        const index_t lo = cols.lo, run = cols.hi - cols.lo;
        if (run == 0 || r0 == r1) continue;
        const float* g = src_row + (r0 - oh0) * OW + lo;
        float* d = gc + (r0 * sh + ioff) * Wd + lo * sw + joff;
        const index_t d_step = sh * Wd;
        if (sw == 1) {
          const Run r(run);
          for (index_t oh = r0; oh < r1; ++oh, g += OW, d += d_step) add_run(d, g, r);
        } else {
          for (index_t oh = r0; oh < r1; ++oh, g += OW, d += d_step)
            for (index_t t = 0; t < run; ++t) d[t * sw] += g[t];
        }
      }
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

// Forward over the (image, output row) pairs [u0, u1) (pair u = n*OH + oh).
void forward_range(const Conv2dShape& s, const Tiling& tl, index_t u0, index_t u1,
                   const float* x, const float* w, const GemmEpilogue& ep, float* y,
                   int gemm_threads) {
  const index_t K = s.C * s.kH * s.kW, P = s.OH * s.OW, OW = s.OW, OH = s.OH, O = s.O;
  const index_t xsz = s.C * s.H * s.W;
  const MatRef wm{w, K, 1};  // (O x K)
  const bool direct = is_pointwise(s);
  index_t u = u0;
  while (u < u1) {
    const index_t n = u / OH, oh0 = u % OH;
    if (tl.nb > 1 && oh0 == 0 && u + 2 * OH <= u1) {
      // Several whole images: col (K x nb*P) and a staging y tile (O x nb*P).
      const index_t cnt = min_of<index_t>(tl.nb, (u1 - u) / OH), ncols = cnt * P;
      float* col = thread_buffer(kSlotTile, static_cast<std::size_t>((K + O) * ncols));
      float* out = col + K * ncols;
      for (index_t b = 0; b < cnt; ++b) im2col(s, x + (n + b) * xsz, 0, OH, col + b * P, ncols);
      sgemm(O, ncols, K, wm, MatRef{col, ncols, 1}, out, ncols, ep, gemm_threads);
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
      float* col = thread_buffer(kSlotTile, static_cast<std::size_t>(K * ncols));
      im2col(s, xn, oh0, oh1, col, ncols);
      bm = MatRef{col, ncols, 1};
    }
    sgemm(O, ncols, K, wm, bm, y + n * O * P + oh0 * OW, P, ep, gemm_threads);
    u += oh1 - oh0;
  }
}

// Backward over whole images [n0, n1): grad_w_acc (O x K) and grad_b_acc (O) are overwritten
// by the first contribution, then accumulated; grad_x (may be null) is written.
void backward_range(const Conv2dShape& s, const Tiling& tl, index_t n0, index_t n1,
                    const float* x, const float* w, const float* gy, float* gx,
                    float* grad_w_acc, float* grad_b_acc, int gemm_threads) {
  const index_t K = s.C * s.kH * s.kW, P = s.OH * s.OW, OW = s.OW, OH = s.OH, O = s.O;
  const index_t xsz = s.C * s.H * s.W, ysz = O * P;
  const MatRef wT{w, 1, K};  // w^T (K x O)
  const GemmEpilogue overwrite;
  GemmEpilogue acc;  // grad_w: overwritten by the first GEMM, then accumulated
  acc.beta = 0.0f;

  for (index_t n = n0; n < n1; ++n)
    for (index_t o = 0; o < O; ++o) {
      const float t = sum_n(gy + n * ysz + o * P, P);
      grad_b_acc[o] = n == n0 ? t : grad_b_acc[o] + t;
    }

  if (is_pointwise(s)) {  // col[n] is x[n] itself (C x P)
    for (index_t n = n0; n < n1; ++n) {
      const MatRef gyn{gy + n * ysz, P, 1};
      sgemm(O, K, P, gyn, MatRef{x + n * xsz, 1, P}, grad_w_acc, K, acc, gemm_threads);
      acc.beta = 1.0f;
      if (gx) sgemm(K, P, O, wT, gyn, gx + n * xsz, P, overwrite, gemm_threads);
    }
    return;
  }

  index_t n = n0;
  while (n < n1) {
    const index_t cnt = min_of(tl.nb, n1 - n);
    if (cnt > 1) {
      // Several whole images: col (K x nb*P) and grad_y staged as (O x nb*P).
      const index_t ncols = cnt * P;
      float* col = thread_buffer(kSlotTile, static_cast<std::size_t>((K + O) * ncols));
      float* gyt = col + K * ncols;
      for (index_t b = 0; b < cnt; ++b) {
        im2col(s, x + (n + b) * xsz, 0, OH, col + b * P, ncols);
        for (index_t o = 0; o < O; ++o) copy_n(gyt + o * ncols + b * P, gy + ((n + b) * O + o) * P, P);
      }
      const MatRef gym{gyt, ncols, 1};
      sgemm(O, K, ncols, gym, MatRef{col, 1, ncols}, grad_w_acc, K, acc, gemm_threads);
      acc.beta = 1.0f;
      if (gx) {
        sgemm(K, ncols, O, wT, gym, col, ncols, overwrite, gemm_threads);  // grad_col
        for (index_t b = 0; b < cnt; ++b) {
          float* gxn = gx + (n + b) * xsz;
          fill_zero(gxn, xsz);
          col2im(s, col + b * P, ncols, 0, OH, gxn);
        }
      }
      n += cnt;
      continue;
    }
    // One image, in chunks of output rows.
    const float* xn = x + n * xsz;
    float* gxn = gx ? gx + n * xsz : nullptr;
    if (gxn) fill_zero(gxn, xsz);
    for (index_t oh0 = 0; oh0 < OH; oh0 += tl.rc) {
      const index_t oh1 = min_of(oh0 + tl.rc, OH), ncols = (oh1 - oh0) * OW;
      float* col = thread_buffer(kSlotTile, static_cast<std::size_t>(K * ncols));
      im2col(s, xn, oh0, oh1, col, ncols);
      const MatRef gy_chunk{gy + n * ysz + oh0 * OW, P, 1};  // (O x ncols)
      sgemm(O, K, ncols, gy_chunk, MatRef{col, 1, ncols}, grad_w_acc, K, acc, gemm_threads);
      acc.beta = 1.0f;
      if (gxn) {
        sgemm(K, ncols, O, wT, gy_chunk, col, ncols, overwrite, gemm_threads);  // grad_col
        col2im(s, col, ncols, oh0, oh1, gxn);
      }
    }
    ++n;
  }
}

}  // namespace

void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* b,
                    bool relu, float* y) {
  const index_t K = s.C * s.kH * s.kW, P = s.OH * s.OW;
  if (s.N <= 0 || s.O <= 0 || P <= 0) return;
  GemmEpilogue ep;
  ep.bias = b;
  ep.bias_mode = b ? Bias::per_row : Bias::none;
  ep.relu = relu;

  const double flops = 2.0 * double(s.N) * s.O * P * max_of<index_t>(K, 1) + double(s.N) * K * P;
  const int nt = threads_for(flops, kMinFlopsPerThread);
  const index_t units = s.N * s.OH;  // (image, output row) pairs
  if (nt <= 1 || units < nt) {
    // One thread, or too few rows to share (batch 1 with one output row): thread the GEMM.
    forward_range(s, make_tiling(s, s.N), 0, units, x, w, ep, y, nt > 1 ? 0 : 1);
    return;
  }
  const Tiling tl = make_tiling(s, ceil_div(s.N, index_t(nt)));
#pragma omp parallel num_threads(nt)
  {
#ifdef _OPENMP
    const int tid = omp_get_thread_num(), team = omp_get_num_threads();
#else
    const int tid = 0, team = 1;
#endif
    // Cut at image boundaries when the batch splits evenly, else at a row.
    const index_t u0 = units * tid / team, u1 = units * (tid + 1) / team;
    forward_range(s, tl, u0, u1, x, w, ep, y, 1);
  }
}

void conv2d_backward(const Conv2dShape& s, const float* x, const float* w, const float* grad_y,
                     float* grad_x, float* grad_w, float* grad_b) {
  const index_t K = s.C * s.kH * s.kW, P = s.OH * s.OW;
  const index_t xsz = s.C * s.H * s.W;
  if (s.O <= 0) {  // grad_w, grad_b empty; nothing flows back
    if (grad_x) fill_zero(grad_x, s.N * xsz);
    return;
  }
  if (s.N <= 0 || P <= 0) {
    fill_zero(grad_w, s.O * K);
    fill_zero(grad_b, s.O);
    if (grad_x) fill_zero(grad_x, s.N * xsz);
    return;
  }
  const int nt = threads_for(6.0 * double(s.N) * s.O * P * max_of<index_t>(K, 1), kMinFlopsPerThread);
  // Over the batch when it divides evenly or is large (imbalance under 1/4), else inside the
  // GEMMs.
  if (nt <= 1 || !(s.N % nt == 0 || s.N >= 4 * nt)) {
    backward_range(s, make_tiling(s, s.N), 0, s.N, x, w, grad_y, grad_x, grad_w, grad_b,
                   nt > 1 ? 0 : 1);
    return;
  }

  // Each thread: whole images, its own grad_w / grad_b partial sums, reduced at the end.
  const Tiling tl = make_tiling(s, ceil_div(s.N, index_t(nt)));
  const index_t acc_len = s.O * K + s.O;
  std::vector<float*> partial(static_cast<std::size_t>(nt), nullptr);
#pragma omp parallel num_threads(nt)
  {
#ifdef _OPENMP
    const int tid = omp_get_thread_num(), team = omp_get_num_threads();
#else
    const int tid = 0, team = 1;
#endif
    float* acc = thread_buffer(kSlotPartial, static_cast<std::size_t>(acc_len));
    partial[static_cast<std::size_t>(tid)] = acc;
    const index_t n0 = s.N * tid / team, n1 = s.N * (tid + 1) / team;
    if (n0 == n1) fill_zero(acc, acc_len);
    else backward_range(s, tl, n0, n1, x, w, grad_y, grad_x, acc, acc + s.O * K, 1);
#pragma omp barrier
    // Reduce: thread tid sums its slice of every partial into grad_w / grad_b.
    const index_t i0 = acc_len * tid / team, i1 = acc_len * (tid + 1) / team;
    for (index_t i = i0; i < i1; ++i) {
      float t = 0.0f;
      for (int p = 0; p < team; ++p) t += partial[static_cast<std::size_t>(p)][i];
      if (i < s.O * K) grad_w[i] = t;
      else grad_b[i - s.O * K] = t;
    }
  }
}

}  // namespace lamina::cpu::LAMINA_ISA_NS
