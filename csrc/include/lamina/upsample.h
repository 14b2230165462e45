// upsample.h: nearest-neighbour 2-D upsampling by an integer factor s >= 1, NCHW float32.
//
//   forward:  x (planes = N*C, H, W) -> y (planes, s*H, s*W),  y[p, i, j] = x[p, i / s, j / s]
//   backward: grad_y (planes, s*H, s*W) -> grad_x (planes, H, W), the sum of each s x s block
// All arrays contiguous, not overlapping. Parallel over input rows (planes * H).
#pragma once
#include "lamina/common.h"

namespace lamina::cpu {
void upsample_nearest2d(const float* x, float* y, index_t planes, index_t H, index_t W, index_t s);
void upsample_nearest2d_backward(const float* grad_y, float* grad_x, index_t planes, index_t H, index_t W, index_t s);
}  // namespace lamina::cpu
