// dropout.cpp: the dropout entry points of lamina/dropout.h, each a switch to its per-ISA twin in
// csrc/cpu/kernels/dropout.cpp (isa_kernel.h). Compiled once, with no arch flags.
#include "lamina/dropout.h"

#include "isa_kernel.h"

LAMINA_ISA_KERNEL(dropout)
LAMINA_ISA_KERNEL(dropout_backward)

namespace lamina::cpu {
void dropout(const float* x, float* y, float* mask, index_t n, double p, std::uint64_t seed) {
  LAMINA_DISPATCH(dropout, x, y, mask, n, p, seed)
}
void dropout_backward(const float* grad_y, const float* mask, float* grad_x, index_t n, double p) {
  LAMINA_DISPATCH(dropout_backward, grad_y, mask, grad_x, n, p)
}
}  // namespace lamina::cpu
