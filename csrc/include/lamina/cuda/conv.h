// cuda/conv.h: conv2d and conv2d_backward on the device (csrc/cuda/conv.cu), with the CPU kernels'
// arguments (lamina/conv.h: Conv2dShape, validated by the caller): im2col over the whole batch +
// one GEMM.
//
//   cols (K = C*kH*kW, N*P), P = OH*OW:  cols[(c*kH + i)*kW + j, n*P + oh*OW + ow]
//                                         = xpad[n, c, oh*sh + i*dh, ow*sw + j*dw]
//   forward:  y (O, N*P) = w (O, K) @ cols + b[o], stored straight into y (N, O, OH, OW) by the
//             GEMM's "NCHW" epilogue (lamina/cuda/gemm.h), ReLU fused
//   backward: gy (O, N*P) = grad_y permuted;  grad_b = row sums of gy;
//             grad_w (O, K) = gy @ cols^T (split over the long N*P axis);
//             grad_cols (K, N*P) = w^T @ gy  ->  col2im  ->  grad_x
#pragma once
#include "lamina/conv.h"
#include "lamina/cuda/common.h"

namespace lamina::cuda {

// y = conv(x, w) + b (b may be null), ReLU when relu.
void conv2d(const Conv2dShape& s, const float* x, const float* w, const float* b, bool relu, float* y);
// grad_x may be null (not computed); grad_w and grad_b are always written (overwritten).
void conv2d_backward(const Conv2dShape& s, const float* x, const float* w, const float* grad_y, float* grad_x,
                     float* grad_w, float* grad_b);

}  // namespace lamina::cuda
