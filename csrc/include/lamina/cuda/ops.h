// cuda/ops.h: the kernels as the backend calls them, written once over an executor X that
// runs bodies: DeviceExec (csrc/bindings/exec_device.h: launches on lamina's stream) or
// HostExec (csrc/bindings/bind_cuda_host.cpp: a plain loop on the host, for tests without a
// GPU). X provides
//   each(name, body, n)    body(i) for i < n
//   sum(name, body, n)     the sum of body(i) in double, kept by X until result()
//   result(&bad)           that sum, and the first bad position recorded since reset_bad() or -1
//   reset_bad(), bad_flag()
//   zero(p, nbytes), set_bytes(p, byte, nbytes), gemm(GemmArgs), row_sums(a, out, rows, cols),
//   Temp (a scratch buffer type)
// so the orchestration below (convolution's im2col + GEMMs, the losses' reductions, the
// flagged checks) is the same code on both.
#pragma once
#include <cmath>

#include "lamina/cuda/activation.h"
#include "lamina/cuda/array.h"
#include "lamina/cuda/conv.h"
#include "lamina/cuda/dropout.h"
#include "lamina/cuda/gemm.h"
#include "lamina/cuda/pool.h"
#include "lamina/cuda/sgd.h"
#include "lamina/cuda/softmax.h"
#include "lamina/cuda/upsample.h"

namespace lamina::cuda::ops {

// y (N, O, OH, OW) = conv(x, w) + b [ReLU]: im2col (K, N*P) then one GEMM whose epilogue adds
// the bias per row and stores NCHW.
template <class X>
void conv2d(X& x, const ConvGeom& g, const float* in, const float* w, const float* b, bool relu, float* y) {
  const index_t K = g.K(), NP = g.N * g.P();
  typename X::Temp cols(sizeof(float) * K * NP);
  x.each("conv2d (im2col)", Im2colBody{in, cols.f(), g}, K * NP);
  x.gemm(GemmArgs{w, cols.f(), y, b, g.O, NP, K, K, NP, NP, false, false, b ? kBiasPerRow : kNoBias, relu, g.P()});
}

// grad_w (O, K) = gy @ cols^T, grad_b = row sums of gy, grad_x = col2im(w^T @ gy) when wanted;
// gy (O, N*P) is grad_y permuted.
template <class X>
void conv2d_backward(X& x, const ConvGeom& g, const float* in, const float* w, const float* grad_y, float* grad_x,
                     float* grad_w, float* grad_b) {
  const index_t K = g.K(), NP = g.N * g.P();
  typename X::Temp gy(sizeof(float) * g.O * NP);
  x.each("conv2d_backward (permute grad_y)", NopToOnpBody{grad_y, gy.f(), g.N, g.O, g.P()}, g.N * g.O * g.P());
  x.row_sums(gy.f(), grad_b, g.O, NP);
  typename X::Temp cols(sizeof(float) * K * NP);
  x.each("conv2d_backward (im2col)", Im2colBody{in, cols.f(), g}, K * NP);
  x.gemm(GemmArgs{gy.f(), cols.f(), grad_w, nullptr, g.O, K, NP, NP, NP, K, false, true, kNoBias, false, 0});
  if (grad_x) {  // grad_cols (K, NP) = w^T (K, O) @ gy (O, NP), into the cols buffer
    x.gemm(GemmArgs{w, gy.f(), cols.f(), nullptr, K, NP, g.O, K, NP, NP, true, false, kNoBias, false, 0});
    x.each("conv2d_backward (col2im)", Col2imBody{cols.f(), grad_x, g}, g.N * g.C * g.H * g.W);
  }
}

// grad_x gathered (lamina/cuda/pool.h); returns the first bad index position or -1 (grad_x is
// then not written).
template <class X>
index_t max_pool2d_backward(X& x, const PoolGeom& g, const float* gy, const std::int64_t* idx, float* gx) {
  if (g.OH >= (index_t(1) << 31) || g.OW >= (index_t(1) << 31))
    throw Error("lamina.cuda: max_pool2d_backward: grad_y's height and width must be below 2^31");
  typename X::Temp ranges(sizeof(int) * 2 * static_cast<std::size_t>(g.H + g.W));
  int* lo = reinterpret_cast<int*>(ranges.f());
  const PoolRanges r{lo, lo + g.H + g.W, g.H};
  x.set_bytes(r.lo, 0x7F, sizeof(int) * static_cast<std::size_t>(g.H + g.W));  // 0x7F7F7F7F: above any row
  x.set_bytes(r.hi, 0xFF, sizeof(int) * static_cast<std::size_t>(g.H + g.W));  // -1
  x.reset_bad();
  x.each("max_pool2d_backward (index ranges)", MaxPoolRangesBody{idx, x.bad_flag(), r, g.H, g.W, g.OH, g.OW},
         g.planes * g.OH * g.OW);
  index_t bad = -1;
  x.result(&bad);
  if (bad >= 0) return bad;
  x.each("max_pool2d_backward", MaxPoolBackwardBody{gy, idx, gx, r, g.H, g.W, g.OH, g.OW}, g.planes * g.H * g.W);
  return -1;
}

// (mean loss, first bad label row or -1)
template <class X>
double softmax_cross_entropy(X& x, const float* logits, const void* labels, bool labels64, float* grad, index_t N,
                             index_t K, index_t* bad) {
  if (K == 0) {  // every label is out of range [0, 0): the first row's, and no logit to read
    *bad = N > 0 ? 0 : -1;
    return std::nan("");
  }
  x.reset_bad();
  const float inv_n = 1.0f / static_cast<float>(N);
  if (labels64)
    x.sum("softmax_cross_entropy",
          SoftmaxXentBody<std::int64_t>{logits, static_cast<const std::int64_t*>(labels), grad, x.bad_flag(), K, inv_n},
          N);
  else
    x.sum("softmax_cross_entropy",
          SoftmaxXentBody<std::int32_t>{logits, static_cast<const std::int32_t*>(labels), grad, x.bad_flag(), K, inv_n},
          N);
  return x.result(bad) / static_cast<double>(N);
}

// out (M, row) = x (R, row)[indices]: every index checked first, and nothing written when one
// is out of range (returns its position; -1 when all are good).
template <class X>
index_t gather_rows(X& x, const char* src, char* out, const void* idx, bool idx64, index_t R, index_t M, index_t row,
                    int itemsize) {
  x.reset_bad();
  if (idx64)
    x.each("gather_rows (check indices)", IndexCheckBody<std::int64_t>{static_cast<const std::int64_t*>(idx),
                                                                        x.bad_flag(), R}, M);
  else
    x.each("gather_rows (check indices)", IndexCheckBody<std::int32_t>{static_cast<const std::int32_t*>(idx),
                                                                        x.bad_flag(), R}, M);
  index_t bad = -1;
  x.result(&bad);
  if (bad >= 0) return bad;
  if (idx64)
    x.each("gather_rows", GatherRowsBody<std::int64_t>{src, out, static_cast<const std::int64_t*>(idx), row, itemsize},
           M * row);
  else
    x.each("gather_rows", GatherRowsBody<std::int32_t>{src, out, static_cast<const std::int32_t*>(idx), row, itemsize},
           M * row);
  return -1;
}

}  // namespace lamina::cuda::ops
