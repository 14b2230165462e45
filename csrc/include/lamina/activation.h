// activation.h: element-wise activations and their backward passes, on flat contiguous
// float32 arrays of n elements (any tensor shape, C-contiguous).
//
//   forward:  y = f(x)                       relu, sigmoid, tanh, leaky_relu (slope)
//   backward: grad_x = grad_y * f'(.)        evaluated from x (relu, leaky_relu) or from the
//                                            forward output y (sigmoid: y(1-y), tanh: 1-y^2)
// In-place use (y == x, grad_x == grad_y or == saved) is allowed: each element is read before
// it is written. Also vmath_apply: exp / log / exp_nonpos element-wise (testing aids for the
// vectorised math of vmath.h).
#pragma once
#include "lamina/common.h"

namespace lamina {
enum class VMathFn : int { exp = 0, log = 1, exp_nonpos = 2 };
}  // namespace lamina

namespace lamina::cpu {
void relu(const float* x, float* y, index_t n);
void relu_backward(const float* grad_y, const float* x, float* grad_x, index_t n);
void sigmoid(const float* x, float* y, index_t n);
void sigmoid_backward(const float* grad_y, const float* y, float* grad_x, index_t n);
void tanh(const float* x, float* y, index_t n);
void tanh_backward(const float* grad_y, const float* y, float* grad_x, index_t n);
void leaky_relu(const float* x, float* y, index_t n, float slope);
void leaky_relu_backward(const float* grad_y, const float* x, float* grad_x, index_t n, float slope);
void vmath_apply(VMathFn fn, const float* x, float* y, index_t n);
}  // namespace lamina::cpu
