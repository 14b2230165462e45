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
// Memory: the column matrix is never built for the whole batch, nor even for a whole image
// when that is large: each thread unrolls a chunk of whole output rows into its own reusable
// buffer (workspace slot 2) of at most max(kColCapFloats, K*OW) floats (256 KiB, or one output
// row of columns when a single row is bigger). The backward pass reuses that buffer for
// grad_col and adds per-thread grad_w/grad_b partial sums (slot 3, O*K + O floats). So one
// call needs at most  threads * (max(256 KiB, 4*K*OW bytes) + 4*(O*K + O) bytes)  beyond its
// inputs and outputs, e.g. 2 * (256 KiB + 74 KiB) for the (64, 32, 16, 64, 3x3) layer.
//
// Threads: over the batch (each thread whole images, the GEMM called serially), or, when the
// batch is smaller than the thread count, over chunks of output rows (forward) or inside the
// GEMM (backward). Small problems stay on one thread.
#include <vector>

#include "lamina/conv.h"
#include "lamina/cpu/simd.h"
#include "lamina/gemm.h"
#include "workspace.h"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace lamina::cpu::LAMINA_ISA_NS {
namespace {

using namespace simd;

// Floats per thread for a chunk of the column matrix: 256 KiB keeps the chunk in L2 between
// its unrolling and the GEMM that reads it.
constexpr index_t kColCapFloats = index_t(1) << 16;
// Below this many flops per thread, a thread's start-up costs more than it saves.
constexpr double kMinFlopsPerThread = 3e5;
// Workspace slots (0 and 1 belong to the GEMM).
constexpr int kSlotCol = 2, kSlotPartial = 3;

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

inline void add_n(float* d, const float* s, index_t n) {
  index_t i = 0;
  for (; i + W <= n; i += W) store(d + i, add(load(d + i), load(s + i)));
  if (i < n) {
    const mask_t m = tail_mask(int(n - i));
    store_mask(d + i, m, add(load_mask(d + i, m), load_mask(s + i, m)));
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

// Output rows per chunk of the column matrix (K x rows*OW floats, within kColCapFloats).
index_t chunk_rows(const Conv2dShape& s) {
  const index_t row_floats = s.C * s.kH * s.kW * s.OW;
  return max_of<index_t>(1, min_of<index_t>(s.OH, kColCapFloats / max_of<index_t>(row_floats, 1)));
}

// Unrolls output rows [oh0, oh1) of image xn (C x H x W) into col (K x (oh1-oh0)*OW).
// Each (row of col, output row) is a zero prefix, a run read from one input row (a
// contiguous copy when sw == 1) and a zero suffix; the bounds come from valid_span, so no
// per-element index test is made.
void im2col(const Conv2dShape& s, const float* xn, index_t oh0, index_t oh1, float* col) {
  const index_t OW = s.OW, ncols = (oh1 - oh0) * OW;
  float* dst = col;
  for (index_t c = 0; c < s.C; ++c) {
    const float* xc = xn + c * s.H * s.W;
    for (index_t ki = 0; ki < s.kH; ++ki) {
      const index_t ioff = ki * s.dh - s.ph;
      const Span rows = valid_span(s.OH, s.sh, ioff, s.H);
      for (index_t kj = 0; kj < s.kW; ++kj, dst += ncols) {
        const index_t joff = kj * s.dw - s.pw;
        const Span cols = valid_span(OW, s.sw, joff, s.W);
        const index_t run = cols.hi - cols.lo;
        for (index_t oh = oh0; oh < oh1; ++oh) {
          float* d = dst + (oh - oh0) * OW;
          if (oh < rows.lo || oh >= rows.hi || run == 0) {
            fill_zero(d, OW);
            continue;
          }
          const float* src = xc + (oh * s.sh + ioff) * s.W + cols.lo * s.sw + joff;
          fill_zero(d, cols.lo);
          if (s.sw == 1) {
            copy_n(d + cols.lo, src, run);
          } else {
            for (index_t t = 0; t < run; ++t) d[cols.lo + t] = src[t * s.sw];
          }
          fill_zero(d + cols.hi, OW - cols.hi);
        }
      }
    }
  }
}

// The adjoint of im2col for output rows [oh0, oh1): adds col (K x (oh1-oh0)*OW) onto the
// image gxn (C x H x W) at the pixels im2col read (padding entries are dropped).
void col2im(const Conv2dShape& s, const float* col, index_t oh0, index_t oh1, float* gxn) {
  const index_t OW = s.OW, ncols = (oh1 - oh0) * OW;
  const float* src_row = col;
  for (index_t c = 0; c < s.C; ++c) {
    float* gc = gxn + c * s.H * s.W;
    for (index_t ki = 0; ki < s.kH; ++ki) {
      const index_t ioff = ki * s.dh - s.ph;
      const Span rows = valid_span(s.OH, s.sh, ioff, s.H);
      const index_t r0 = max_of(oh0, rows.lo), r1 = min_of(oh1, rows.hi);
      for (index_t kj = 0; kj < s.kW; ++kj, src_row += ncols) {
        const index_t joff = kj * s.dw - s.pw;
        const Span cols = valid_span(OW, s.sw, joff, s.W);
        const index_t run = cols.hi - cols.lo;
        if (run == 0) continue;
        for (index_t oh = r0; oh < r1; ++oh) {
          const float* g = src_row + (oh - oh0) * OW + cols.lo;
          float* d = gc + (oh * s.sh + ioff) * s.W + cols.lo * s.sw + joff;
          if (s.sw == 1) {
            add_n(d, g, run);
          } else {
            for (index_t t = 0; t < run; ++t) d[t * s.sw] += g[t];
          }
        }
      }
    }
  }
}

// One image's backward: grad_b_acc (O) and grad_w_acc (O x K) are overwritten when `first`,
// else accumulated; gxn (C x H x W, may be null) is written. gemm_threads as for sgemm.
void backward_image(const Conv2dShape& s, const float* xn, const float* w, const float* gyn,
                    float* gxn, float* grad_w_acc, float* grad_b_acc, bool first,
                    int gemm_threads) {
  const index_t K = s.C * s.kH * s.kW, P = s.OH * s.OW, OW = s.OW;
  for (index_t o = 0; o < s.O; ++o) {
    const float t = sum_n(gyn + o * P, P);
    grad_b_acc[o] = first ? t : grad_b_acc[o] + t;
  }
  GemmEpilogue acc;  // grad_w: overwrite on the first contribution, then accumulate
  acc.beta = first ? 0.0f : 1.0f;
  const GemmEpilogue overwrite;
  const MatRef wT{w, 1, K};  // w^T (K x O)

  if (is_pointwise(s)) {  // col[n] is x[n] itself (C x P)
    sgemm(s.O, K, P, MatRef{gyn, P, 1}, MatRef{xn, 1, P}, grad_w_acc, K, acc, gemm_threads);
    if (gxn) sgemm(K, P, s.O, wT, MatRef{gyn, P, 1}, gxn, P, overwrite, gemm_threads);
    return;
  }
  if (gxn) fill_zero(gxn, s.C * s.H * s.W);
  const index_t rc = chunk_rows(s);
  for (index_t oh0 = 0; oh0 < s.OH; oh0 += rc) {
    const index_t oh1 = min_of(oh0 + rc, s.OH), ncols = (oh1 - oh0) * OW;
    float* col = thread_buffer(kSlotCol, static_cast<std::size_t>(K * ncols));
    im2col(s, xn, oh0, oh1, col);
    const MatRef gy_chunk{gyn + oh0 * OW, P, 1};  // (O x ncols)
    sgemm(s.O, K, ncols, gy_chunk, MatRef{col, 1, ncols}, grad_w_acc, K, acc, gemm_threads);
    acc.beta = 1.0f;
    if (gxn) {
      sgemm(K, ncols, s.O, wT, gy_chunk, col, ncols, overwrite, gemm_threads);  // grad_col
      col2im(s, col, oh0, oh1, gxn);
    }
  }
}

}  // namespace

void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* b,
                    bool relu, float* y) {
  const index_t K = s.C * s.kH * s.kW, P = s.OH * s.OW, OW = s.OW;
  if (s.N <= 0 || s.O <= 0 || P <= 0) return;
  GemmEpilogue ep;
  ep.bias = b;
  ep.bias_mode = b ? Bias::per_row : Bias::none;
  ep.relu = relu;
  const MatRef wm{w, K, 1};  // (O x K)
  const bool direct = is_pointwise(s);

  // Work items: (image, chunk of output rows). With fewer images than threads the rows are
  // split further so every thread gets its share of both the unrolling and the GEMM.
  const int nt = threads_for(2.0 * double(s.N) * s.O * P * max_of<index_t>(K, 1) +
                                 double(s.N) * K * P,
                             kMinFlopsPerThread);
  index_t rc = direct ? s.OH : chunk_rows(s);
  index_t chunks = ceil_div(s.OH, rc);
  if (nt > 1 && s.N * chunks < nt) {
    chunks = min_of<index_t>(s.OH, ceil_div(nt, s.N));
    rc = ceil_div(s.OH, chunks);
    chunks = ceil_div(s.OH, rc);
  }
  const index_t items = s.N * chunks;
  // Too few items to share (e.g. batch 1 with a single output row): thread inside the GEMM.
  const int gemm_threads = (nt > 1 && items < nt) ? 0 : 1;
  const int team = gemm_threads == 1 ? nt : 1;

#pragma omp parallel for num_threads(team) schedule(static) if (team > 1)
  for (index_t it = 0; it < items; ++it) {
    const index_t n = it / chunks, oh0 = (it % chunks) * rc;
    const index_t oh1 = min_of(oh0 + rc, s.OH), ncols = (oh1 - oh0) * OW;
    const float* xn = x + n * s.C * s.H * s.W;
    MatRef bm{xn + oh0 * OW, s.H * s.W, 1};  // pointwise: x[n] is already (C x P)
    if (!direct) {
      float* col = thread_buffer(kSlotCol, static_cast<std::size_t>(K * ncols));
      im2col(s, xn, oh0, oh1, col);
      bm = MatRef{col, ncols, 1};
    }
    sgemm(s.O, ncols, K, wm, bm, y + n * s.O * P + oh0 * OW, P, ep, gemm_threads);
  }
}

void conv2d_backward(const Conv2dShape& s, const float* x, const float* w, const float* grad_y,
                     float* grad_x, float* grad_w, float* grad_b) {
  const index_t K = s.C * s.kH * s.kW, P = s.OH * s.OW;
  const index_t xsz = s.C * s.H * s.W, ysz = s.O * P;
  if (s.O <= 0) {  // grad_w, grad_b empty; nothing flows back
    if (grad_x) fill_zero(grad_x, s.N * xsz);
    return;
  }
  if (s.N <= 0 || P <= 0) {
    fill_zero(grad_w, s.O * K);
    fill_zero(grad_b, s.O);
    return;
  }
  const int nt = threads_for(6.0 * double(s.N) * s.O * P * max_of<index_t>(K, 1), kMinFlopsPerThread);
  // Over the batch when it divides evenly or is large (imbalance under 1/4), else inside the
  // GEMMs image by image.
  if (nt <= 1 || !(s.N % nt == 0 || s.N >= 4 * nt)) {
    const int gemm_threads = nt > 1 ? 0 : 1;
    for (index_t n = 0; n < s.N; ++n)
      backward_image(s, x + n * xsz, w, grad_y + n * ysz, grad_x ? grad_x + n * xsz : nullptr,
                     grad_w, grad_b, n == 0, gemm_threads);
    return;
  }

  // Each thread: whole images, its own grad_w / grad_b partial sums, reduced at the end.
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
    for (index_t n = n0; n < n1; ++n)
      backward_image(s, x + n * xsz, w, grad_y + n * ysz, grad_x ? grad_x + n * xsz : nullptr,
                     acc, acc + s.O * K, n == n0, 1);
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
