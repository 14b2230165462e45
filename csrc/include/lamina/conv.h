// conv.h: 2-D convolution (cross-correlation, as torch.nn.functional.conv2d), NCHW float32,
// forward and backward, computed as im2col + GEMM (csrc/cpu/kernels/conv.cpp), directly
// (conv_direct.h) or, for 3x3 stride-1 kernels, by Winograd's minimal filtering (winograd.h).
//
//   y  (N, O, OH, OW) = conv(x (N, C, H, W), w (O, C, kH, kW)) + b (O,)  [then ReLU]
//   grad_x (N, C, H, W), grad_w (O, C, kH, kW), grad_b (O,) from grad_y (N, O, OH, OW)
//
// All arrays are C-contiguous; the caller (the binding) has validated the geometry, so the
// kernels never read or write outside them.
#pragma once
#include <atomic>
#include <cstdint>

#include "lamina/common.h"

namespace lamina {

struct Conv2dShape {
  index_t N, C, H, W;   // input
  index_t O, kH, kW;    // weights (O, C, kH, kW)
  index_t sh, sw;       // stride, >= 1
  index_t ph, pw;       // zero padding on each side, >= 0
  index_t dh, dw;       // dilation, >= 1
  index_t OH, OW;       // output size: (H + 2ph - dh(kH-1) - 1) / sh + 1, >= 1
};

// Testing aid: forces how conv2d_backward computes grad_w (0 = chosen by shape, 1 = packed
// GEMM, 2 = dot products), so the tests reach every path whatever the heuristic picks.
// One value for the process.
inline std::atomic<int>& conv_testing_grad_w_method() {
  static std::atomic<int> method{0};
  return method;
}

}  // namespace lamina

namespace lamina::cpu {
// y = conv(x, w) + b (b may be null), ReLU when relu.
void conv2d(const Conv2dShape& s, const float* x, const float* w, const float* b, bool relu,
            float* y);
// grad_x may be null (not computed); grad_w and grad_b are always written (overwritten).
void conv2d_backward(const Conv2dShape& s, const float* x, const float* w, const float* grad_y,
                     float* grad_x, float* grad_w, float* grad_b);
// grad_w and grad_b (overwritten) of a convolution whose output went into a max pool, from
// the pooled gradient gp and the pool's indices idx, both (N, O, P) (P = pooled cells per
// plane; idx flat within each OH x OW output plane, as max_pool2d returns them): grad_y =
// unpool(gp, idx) is never formed. Returns the flat position of the first index outside
// [0, OH * OW) (nothing written then is meaningful), or -1.
index_t conv2d_backward_pooled(const Conv2dShape& s, index_t P, const float* x, const float* gp,
                               const std::int64_t* idx, float* grad_w, float* grad_b);

// Which algorithm conv2d and conv2d_backward run for s on the active path and tuning:
// "winograd2" / "winograd4" (F(2x2, 3x3) / F(4x4, 3x3), winograd.h), "direct" (conv_direct.h)
// or "gemm" (im2col + GEMM), for the forward, grad_x and grad_w.
struct ConvAlgorithms {
  const char* forward;
  const char* grad_x;
  const char* grad_w;
};
ConvAlgorithms conv2d_algorithms(const Conv2dShape& s);

// Testing aids: the Winograd stages alone (winograd.h has the layouts), m = 2 or 4.
void winograd_filter_transform(int m, index_t O, index_t C, const float* w, bool flipped, float* U);
void winograd_input_transform(const Conv2dShape& s, int m, const float* x, float* V);
void winograd_output_transform(const Conv2dShape& s, int m, const float* M, const float* b, bool relu,
                               float* y);
}  // namespace lamina::cpu
