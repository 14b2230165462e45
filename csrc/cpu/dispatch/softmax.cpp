// softmax.cpp: the softmax entry points of lamina/softmax.h, each a switch to its per-ISA twin in
// csrc/cpu/kernels/softmax.cpp (isa_kernel.h). Compiled once, with no arch flags.
#include "lamina/softmax.h"

#include "isa_kernel.h"

LAMINA_ISA_KERNEL(softmax)
LAMINA_ISA_KERNEL(log_softmax)
LAMINA_ISA_KERNEL(softmax_cross_entropy)
LAMINA_ISA_KERNEL(softmax_backward)

namespace lamina::cpu {
void softmax(const float* x, float* y, index_t outer, index_t K, index_t inner) {
  LAMINA_DISPATCH(softmax, x, y, outer, K, inner)
}
void log_softmax(const float* x, float* y, index_t outer, index_t K, index_t inner) {
  LAMINA_DISPATCH(log_softmax, x, y, outer, K, inner)
}
double softmax_cross_entropy(const float* logits, const std::int64_t* labels, float* grad,
                             index_t N, index_t K) {
  LAMINA_DISPATCH(softmax_cross_entropy, logits, labels, grad, N, K)
}
void softmax_backward(const float* grad_y, const float* y, float* grad_x, index_t outer, index_t K,
                      index_t inner) {
  LAMINA_DISPATCH(softmax_backward, grad_y, y, grad_x, outer, K, inner)
}
}  // namespace lamina::cpu
