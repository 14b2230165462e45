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
#include "lamina/cpu/isa.h"

namespace lamina {
enum class Activation : int { relu = 0, sigmoid = 1, tanh = 2, leaky_relu = 3 };
enum class VMathFn : int { exp = 0, log = 1, exp_nonpos = 2 };
}  // namespace lamina

LAMINA_DECLARE_ISA_KERNEL(void, activation_forward,
                          (lamina::Activation act, const float* x, float* y, lamina::index_t n,
                           float slope))
// saved: x for relu / leaky_relu, y = f(x) for sigmoid / tanh.
LAMINA_DECLARE_ISA_KERNEL(void, activation_backward,
                          (lamina::Activation act, const float* grad_y, const float* saved,
                           float* grad_x, lamina::index_t n, float slope))
LAMINA_DECLARE_ISA_KERNEL(void, vmath_apply,
                          (lamina::VMathFn fn, const float* x, float* y, lamina::index_t n))

namespace lamina::cpu {
inline void activation_forward(Activation act, const float* x, float* y, index_t n, float slope) {
  LAMINA_DISPATCH(activation_forward, act, x, y, n, slope)
}
inline void activation_backward(Activation act, const float* grad_y, const float* saved,
                                float* grad_x, index_t n, float slope) {
  LAMINA_DISPATCH(activation_backward, act, grad_y, saved, grad_x, n, slope)
}
inline void vmath_apply(VMathFn fn, const float* x, float* y, index_t n) {
  LAMINA_DISPATCH(vmath_apply, fn, x, y, n)
}
}  // namespace lamina::cpu
