// conv.cpp: the conv entry points of lamina/conv.h, each a switch to its per-ISA twin in
// csrc/cpu/kernels/conv.cpp (isa_kernel.h). Compiled once, with no arch flags.
#include "lamina/conv.h"

#include "isa_kernel.h"

LAMINA_ISA_KERNEL(conv2d)
LAMINA_ISA_KERNEL(conv2d_backward)
LAMINA_ISA_KERNEL(conv2d_backward_pooled)

namespace lamina::cpu {
void conv2d(const Conv2dShape& s, const float* x, const float* w, const float* b, bool relu,
            float* y) {
  LAMINA_DISPATCH(conv2d, s, x, w, b, relu, y)
}
void conv2d_backward(const Conv2dShape& s, const float* x, const float* w, const float* grad_y,
                     float* grad_x, float* grad_w, float* grad_b) {
  LAMINA_DISPATCH(conv2d_backward, s, x, w, grad_y, grad_x, grad_w, grad_b)
}
index_t conv2d_backward_pooled(const Conv2dShape& s, index_t P, const float* x, const float* gp,
                               const std::int64_t* idx, float* grad_w, float* grad_b) {
  LAMINA_DISPATCH(conv2d_backward_pooled, s, P, x, gp, idx, grad_w, grad_b)
}
}  // namespace lamina::cpu
