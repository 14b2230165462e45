// pool.h: 2-D max and average pooling, forward and backward, NCHW float32.
//
//   x (planes = N*C, H, W) -> y (planes, OH, OW),  OH = (H + 2 ph - kh) / sh + 1 (floor)
//   window (oh, ow) covers input rows oh*sh - ph .. + kh - 1 and columns ow*sw - pw .. + kw - 1;
//   cells outside the input are padding.
//   max: padding counts as -inf; idx = ih * W + iw of the maximum within its (H*W) plane; ties
//        go to the first maximum in row-major window order, a NaN wins (the last NaN, as in
//        PyTorch); backward scatters grad_y to grad_x[idx] (accumulating).
//   avg: y = (sum of the window's input cells) / (kh * kw)  (padding counted in the divisor);
//        backward spreads grad_y / (kh * kw) over the window's input cells.
// Callers guarantee H, W >= 1, k >= 1, s >= 1, 0 <= p <= k / 2 and OH, OW >= 1, so every
// window holds at least one input cell. Parallel over planes.
#pragma once
#include <cstdint>

#include "lamina/common.h"

namespace lamina {
struct Pool2d {
  index_t planes, H, W, OH, OW;
  index_t kh, kw, sh, sw, ph, pw;
};
}  // namespace lamina

namespace lamina::cpu {
void max_pool2d(const float* x, float* y, std::int64_t* idx, const Pool2d& g);
// Returns -1, or the flat position in grad_y / idx of the first index outside [0, H*W) (then
// grad_x is unspecified and the caller raises).
index_t max_pool2d_backward(const float* grad_y, const std::int64_t* idx, float* grad_x,
                            const Pool2d& g);
void avg_pool2d(const float* x, float* y, const Pool2d& g);
void avg_pool2d_backward(const float* grad_y, float* grad_x, const Pool2d& g);
}  // namespace lamina::cpu
