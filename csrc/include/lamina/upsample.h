// upsample.h: nearest-neighbour 2-D upsampling by an integer factor s >= 1, NCHW float32.
//
//   forward:  x (planes = N*C, H, W) -> y (planes, s*H, s*W),  y[p, i, j] = x[p, i / s, j / s]
//   backward: grad_y (planes, s*H, s*W) -> grad_x (planes, H, W), the sum of each s x s block
// All arrays contiguous, not overlapping. Parallel over input rows (planes * H).
#pragma once
#include "lamina/common.h"
#include "lamina/cpu/isa.h"

LAMINA_DECLARE_ISA_KERNEL(void, upsample_nearest2d_forward,
                          (const float* x, float* y, lamina::index_t planes, lamina::index_t H,
                           lamina::index_t W, lamina::index_t s))
LAMINA_DECLARE_ISA_KERNEL(void, upsample_nearest2d_backward,
                          (const float* grad_y, float* grad_x, lamina::index_t planes, lamina::index_t H,
                           lamina::index_t W, lamina::index_t s))

namespace lamina::cpu {
inline void upsample_nearest2d_forward(const float* x, float* y, index_t planes, index_t H, index_t W,
                                       index_t s) {
  LAMINA_DISPATCH(upsample_nearest2d_forward, x, y, planes, H, W, s)
}
inline void upsample_nearest2d_backward(const float* grad_y, float* grad_x, index_t planes, index_t H,
                                        index_t W, index_t s) {
  LAMINA_DISPATCH(upsample_nearest2d_backward, grad_y, grad_x, planes, H, W, s)
}
}  // namespace lamina::cpu
