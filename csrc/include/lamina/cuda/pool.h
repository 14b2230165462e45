// cuda/pool.h: 2-D max and average pooling on the device (csrc/cuda/pool.cu), with the CPU
// kernels' arguments and geometry (lamina/pool.h: Pool2d, planes = N*C) and the semantics of
// lamina.reference.pool: padding -inf (max) or 0 (avg, counted in the divisor); max gives the
// first maximum in row-major window order among input cells, a window with a NaN gives NaN and
// the last NaN's index; idx = ih * W + iw within the plane. The backward passes gather per input
// cell (no atomic adds), so the results are the CPU's bits whatever the launch order.
#pragma once
#include <cstdint>

#include "lamina/cuda/common.h"
#include "lamina/pool.h"

namespace lamina::cuda {

void max_pool2d(const float* x, float* y, std::int64_t* idx, const Pool2d& g);
// Only g.planes, H, W, OH and OW are read. Returns -1, or the flat position in grad_y / idx of
// the first index outside [0, H*W) (then grad_x is not written).
index_t max_pool2d_backward(const float* grad_y, const std::int64_t* idx, float* grad_x, const Pool2d& g);
void avg_pool2d(const float* x, float* y, const Pool2d& g);
void avg_pool2d_backward(const float* grad_y, float* grad_x, const Pool2d& g);

}  // namespace lamina::cuda
