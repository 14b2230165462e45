// conv.cpp: the conv entry points of lamina/conv.h, each a switch to its per-ISA twin in
// csrc/cpu/kernels/conv.cpp (isa_kernel.h). Compiled once, with no arch flags.
#include "lamina/conv.h"

#include "isa_kernel.h"

LAMINA_ISA_KERNEL(conv2d)
LAMINA_ISA_KERNEL(conv2d_backward)
LAMINA_ISA_KERNEL(conv2d_backward_pooled)
LAMINA_ISA_KERNEL(conv2d_algorithms)
LAMINA_ISA_KERNEL(winograd_filter_transform)
LAMINA_ISA_KERNEL(winograd_input_transform)
LAMINA_ISA_KERNEL(winograd_output_transform)

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
ConvAlgorithms conv2d_algorithms(const Conv2dShape& s) { LAMINA_DISPATCH(conv2d_algorithms, s) }
void winograd_filter_transform(int m, index_t O, index_t C, const float* w, bool flipped, float* U) {
  LAMINA_DISPATCH(winograd_filter_transform, m, O, C, w, flipped, U)
}
void winograd_input_transform(const Conv2dShape& s, int m, const float* x, float* V) {
  LAMINA_DISPATCH(winograd_input_transform, s, m, x, V)
}
void winograd_output_transform(const Conv2dShape& s, int m, const float* M, const float* b, bool relu,
                               float* y) {
  LAMINA_DISPATCH(winograd_output_transform, s, m, M, b, relu, y)
}
}  // namespace lamina::cpu
