// loss.cpp: the loss entry points of lamina/loss.h, each a switch to its per-ISA twin in
// csrc/cpu/kernels/loss.cpp (isa_kernel.h). Compiled once, with no arch flags.
#include "lamina/loss.h"

#include "isa_kernel.h"

LAMINA_ISA_KERNEL(mse)
LAMINA_ISA_KERNEL(binary_cross_entropy)

namespace lamina::cpu {
double mse(const float* pred, const float* target, float* grad, index_t n, index_t n_examples) {
  LAMINA_DISPATCH(mse, pred, target, grad, n, n_examples)
}
double binary_cross_entropy(const float* prob, const float* target, float* grad, index_t n,
                            float eps) {
  LAMINA_DISPATCH(binary_cross_entropy, prob, target, grad, n, eps)
}
}  // namespace lamina::cpu
