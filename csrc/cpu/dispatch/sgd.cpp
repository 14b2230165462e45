// sgd.cpp: the sgd entry points of lamina/sgd.h, each a switch to its per-ISA twin in
// csrc/cpu/kernels/sgd.cpp (isa_kernel.h). Compiled once, with no arch flags.
#include "lamina/sgd.h"

#include "isa_kernel.h"

LAMINA_ISA_KERNEL(sgd_step)
LAMINA_ISA_KERNEL(adam_step)

namespace lamina::cpu {
void sgd_step(const float* param, const float* grad, const float* velocity, float* param_out,
              float* velocity_out, index_t n, float lr, float momentum, float weight_decay,
              bool nesterov) {
  LAMINA_DISPATCH(sgd_step, param, grad, velocity, param_out, velocity_out, n, lr, momentum,
                  weight_decay, nesterov)
}
void adam_step(const float* param, const float* grad, const float* m, const float* v, float* param_out,
               float* m_out, float* v_out, index_t n, double lr, std::int64_t step, double beta1,
               double beta2, double eps, double weight_decay, bool decoupled) {
  LAMINA_DISPATCH(adam_step, param, grad, m, v, param_out, m_out, v_out, n, lr, step, beta1, beta2,
                  eps, weight_decay, decoupled)
}
}  // namespace lamina::cpu
