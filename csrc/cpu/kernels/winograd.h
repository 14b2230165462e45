// winograd.h: 3x3, stride-1, undilated convolutions by Winograd's minimal filtering
// F(m x m, 3 x 3), m = 2 or 4 (Lavin & Gray 2015), compiled once per ISA (winograd.cpp).
// The NumPy twin, which fixes the layouts below, is python/lamina/reference/winograd.py.
//
// Layouts (a = m + 2, xi = a*a positions of a transformed tile, T tiles):
//   U (a*a, O, C)  the filter transform G g G^T of every (output, input) channel pair
//   V (a*a, C, T)  the input transform B^T d B of every (channel, tile)
//   M (a*a, O, T)  = U[xi] @ V[xi]; the output transform A^T M A gives an m x m output tile
#pragma once
#include "lamina/common.h"
#include "lamina/conv.h"

namespace lamina::cpu::LAMINA_ISA_NS::winograd {

// 3x3 kernel, stride 1, dilation 1 (any padding).
bool eligible(const Conv2dShape& s);
// The input gradient by Winograd too: eligible and padding <= 2 (its convolution of grad_y
// is padded by 2 - p).
bool backward_data_eligible(const Conv2dShape& s);

// The tile size m (2 or 4) conv2d's forward uses for s, or 0 for the im2col / direct paths:
// the forced choice (tuning().conv_algo) where eligible, else the measured rule.
int forward_tile(const Conv2dShape& s);
// The same for conv2d_backward's grad_x (0 where it stays on the GEMM path).
int backward_data_tile(const Conv2dShape& s);

// y (N, O, OH, OW) = conv(x, w) + b (may be null), ReLU when relu. `flipped`: w is the
// weight of the convolution whose input gradient this computes, stored (C, O, 3, 3) (its
// own O = s.C and C = s.O): the filter used is w[c, o, 2 - i, 2 - j].
void conv2d(const Conv2dShape& s, int m, const float* x, const float* w, const float* b, bool relu,
            float* y, bool flipped = false);
// grad_x (N, C, H, W) of a convolution s: the convolution of grad_y with the flipped filter.
void conv2d_backward_data(const Conv2dShape& s, int m, const float* w, const float* grad_y,
                          float* grad_x);

// grad_w (O, C, 3, 3) and grad_b (O,) (overwritten) by Winograd correlation: with the forward's
// tiles, dL/dU[xi] (C x O) = sum over tiles of V[xi]^T (B^T d B) times (A g A^T)[xi] of the
// output-gradient tile g, then grad_w = G^T dU G (the adjoint of the forward's bilinear form).
void conv2d_backward_weight(const Conv2dShape& s, int m, const float* x, const float* grad_y, float* grad_w,
                            float* grad_b);
// The tile conv2d_backward's grad_w uses (0: the GEMM / direct paths).
int backward_weight_tile(const Conv2dShape& s);

// The stages, exposed for the tests against the reference (bind_conv.cpp).
// U (a*a, O, C) from w (O, C, 3, 3) (flipped as above when `flipped`).
void filter_transform(int m, index_t O, index_t C, const float* w, bool flipped, float* U);
// V (a*a, C, N*TH*TW) of every tile of x; M (a*a, O, N*TH*TW) -> y (N, O, OH, OW).
void input_transform(const Conv2dShape& s, int m, const float* x, float* V);
void output_transform(const Conv2dShape& s, int m, const float* M, const float* b, bool relu, float* y);

}  // namespace lamina::cpu::LAMINA_ISA_NS::winograd
