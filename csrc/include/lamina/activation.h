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
enum class VMathFn : int { exp = 0, log = 1, exp_nonpos = 2 };
}  // namespace lamina

LAMINA_DECLARE_ISA_KERNEL(void, relu, (const float* x, float* y, lamina::index_t n))
LAMINA_DECLARE_ISA_KERNEL(void, relu_backward,
                          (const float* grad_y, const float* x, float* grad_x, lamina::index_t n))
LAMINA_DECLARE_ISA_KERNEL(void, sigmoid, (const float* x, float* y, lamina::index_t n))
LAMINA_DECLARE_ISA_KERNEL(void, sigmoid_backward,
                          (const float* grad_y, const float* y, float* grad_x, lamina::index_t n))
LAMINA_DECLARE_ISA_KERNEL(void, tanh, (const float* x, float* y, lamina::index_t n))
LAMINA_DECLARE_ISA_KERNEL(void, tanh_backward,
                          (const float* grad_y, const float* y, float* grad_x, lamina::index_t n))
LAMINA_DECLARE_ISA_KERNEL(void, leaky_relu,
                          (const float* x, float* y, lamina::index_t n, float slope))
LAMINA_DECLARE_ISA_KERNEL(void, leaky_relu_backward,
                          (const float* grad_y, const float* x, float* grad_x, lamina::index_t n,
                           float slope))
LAMINA_DECLARE_ISA_KERNEL(void, vmath_apply,
                          (lamina::VMathFn fn, const float* x, float* y, lamina::index_t n))

namespace lamina::cpu {
inline void relu(const float* x, float* y, index_t n) { LAMINA_DISPATCH(relu, x, y, n) }
inline void relu_backward(const float* grad_y, const float* x, float* grad_x, index_t n) {
  LAMINA_DISPATCH(relu_backward, grad_y, x, grad_x, n)
}
inline void sigmoid(const float* x, float* y, index_t n) { LAMINA_DISPATCH(sigmoid, x, y, n) }
inline void sigmoid_backward(const float* grad_y, const float* y, float* grad_x, index_t n) {
  LAMINA_DISPATCH(sigmoid_backward, grad_y, y, grad_x, n)
}
inline void tanh(const float* x, float* y, index_t n) { LAMINA_DISPATCH(tanh, x, y, n) }
inline void tanh_backward(const float* grad_y, const float* y, float* grad_x, index_t n) {
  LAMINA_DISPATCH(tanh_backward, grad_y, y, grad_x, n)
}
inline void leaky_relu(const float* x, float* y, index_t n, float slope) {
  LAMINA_DISPATCH(leaky_relu, x, y, n, slope)
}
inline void leaky_relu_backward(const float* grad_y, const float* x, float* grad_x, index_t n,
                                float slope) {
  LAMINA_DISPATCH(leaky_relu_backward, grad_y, x, grad_x, n, slope)
}
inline void vmath_apply(VMathFn fn, const float* x, float* y, index_t n) {
  LAMINA_DISPATCH(vmath_apply, fn, x, y, n)
}
}  // namespace lamina::cpu
