// norm.cpp: the batch-norm entry points of lamina/norm.h, each a switch to its per-ISA twin in
// csrc/cpu/kernels/norm.cpp (isa_kernel.h). Compiled once, with no arch flags.
#include "lamina/norm.h"

#include "isa_kernel.h"

LAMINA_ISA_KERNEL(batch_norm)
LAMINA_ISA_KERNEL(batch_norm_backward)

namespace lamina::cpu {
void batch_norm(const float* x, const float* weight, const float* bias, float* running_mean, float* running_var,
                float* y, float* mean, float* invstd, index_t N, index_t C, index_t S, bool training,
                double momentum, double eps) {
  LAMINA_DISPATCH(batch_norm, x, weight, bias, running_mean, running_var, y, mean, invstd, N, C, S, training,
                  momentum, eps)
}
void batch_norm_backward(const float* grad_y, const float* x, const float* weight, const float* mean,
                         const float* invstd, float* grad_x, float* grad_weight, float* grad_bias, index_t N,
                         index_t C, index_t S, bool training) {
  LAMINA_DISPATCH(batch_norm_backward, grad_y, x, weight, mean, invstd, grad_x, grad_weight, grad_bias, N, C, S,
                  training)
}
}  // namespace lamina::cpu
