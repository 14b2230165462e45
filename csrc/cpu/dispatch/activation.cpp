// activation.cpp: the activation entry points of lamina/activation.h, each a switch to its per-ISA twin in
// csrc/cpu/kernels/activation.cpp (isa_kernel.h). Compiled once, with no arch flags.
#include "lamina/activation.h"

#include "isa_kernel.h"

LAMINA_ISA_KERNEL(relu)
LAMINA_ISA_KERNEL(relu_backward)
LAMINA_ISA_KERNEL(sigmoid)
LAMINA_ISA_KERNEL(sigmoid_backward)
LAMINA_ISA_KERNEL(tanh)
LAMINA_ISA_KERNEL(tanh_backward)
LAMINA_ISA_KERNEL(leaky_relu)
LAMINA_ISA_KERNEL(leaky_relu_backward)
LAMINA_ISA_KERNEL(vmath_apply)

namespace lamina::cpu {
void relu(const float* x, float* y, index_t n) { LAMINA_DISPATCH(relu, x, y, n) }
void relu_backward(const float* grad_y, const float* x, float* grad_x, index_t n) {
  LAMINA_DISPATCH(relu_backward, grad_y, x, grad_x, n)
}
void sigmoid(const float* x, float* y, index_t n) { LAMINA_DISPATCH(sigmoid, x, y, n) }
void sigmoid_backward(const float* grad_y, const float* y, float* grad_x, index_t n) {
  LAMINA_DISPATCH(sigmoid_backward, grad_y, y, grad_x, n)
}
void tanh(const float* x, float* y, index_t n) { LAMINA_DISPATCH(tanh, x, y, n) }
void tanh_backward(const float* grad_y, const float* y, float* grad_x, index_t n) {
  LAMINA_DISPATCH(tanh_backward, grad_y, y, grad_x, n)
}
void leaky_relu(const float* x, float* y, index_t n, float slope) {
  LAMINA_DISPATCH(leaky_relu, x, y, n, slope)
}
void leaky_relu_backward(const float* grad_y, const float* x, float* grad_x, index_t n, float slope) {
  LAMINA_DISPATCH(leaky_relu_backward, grad_y, x, grad_x, n, slope)
}
void vmath_apply(VMathFn fn, const float* x, float* y, index_t n) {
  LAMINA_DISPATCH(vmath_apply, fn, x, y, n)
}
}  // namespace lamina::cpu
