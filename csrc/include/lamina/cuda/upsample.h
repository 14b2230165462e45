// cuda/upsample.h: nearest-neighbour 2-D upsampling by s on the device (csrc/cuda/upsample.cu),
// with the CPU kernels' arguments (lamina/upsample.h). NCHW, planes = N*C, contiguous:
//   upsample_nearest2d           x (planes, H, W) -> y (planes, sH, sW), y[p, i, j] = x[p, i/s, j/s]
//   upsample_nearest2d_backward  grad_y (planes, sH, sW) -> grad_x (planes, H, W): each s x s block summed
#pragma once
#include "lamina/cuda/common.h"

namespace lamina::cuda {

void upsample_nearest2d(const float* x, float* y, index_t planes, index_t H, index_t W, index_t s);
void upsample_nearest2d_backward(const float* grad_y, float* grad_x, index_t planes, index_t H, index_t W, index_t s);

}  // namespace lamina::cuda
