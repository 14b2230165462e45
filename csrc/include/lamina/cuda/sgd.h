// cuda/sgd.h: the optimiser updates on the device (csrc/cuda/sgd.cu), with the CPU kernels'
// arguments (lamina/sgd.h) and the formulas of lamina.reference.sgd. The new values may go to
// other arrays than the old ones (param_out, velocity_out, m_out, v_out:
// Optimizer.step(keep_previous=True)); by default they are the same. Arrays flat, n elements.
//
//   sgd_step:  g = grad + wd * param;  v = momentum * v + g;  g = nesterov ? g + momentum * v : v
//              param -= lr * g       (momentum 0: velocity unused; a velocity_out gets velocity
//              as it is; both may be null then)
//   adam_step: decoupled: param *= 1 - lr * wd, g = grad;  else g = grad + wd * param
//              m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g g
//              param -= lr_t * (m / (sqrt(v) / sqrt_bc2 + eps)),  lr_t = lr / (1 - b1^step)
// The operations, their order, the fused multiply-adds and the constants (formed in double) are
// the CPU kernel's (csrc/cpu/kernels/sgd.cpp), so a step gives the CPU's bits where the CPU uses
// FMA (its AVX2 and AVX-512 paths).
#pragma once
#include <cstdint>

#include "lamina/cuda/common.h"

namespace lamina::cuda {

void sgd_step(const float* param, const float* grad, const float* velocity, float* param_out, float* velocity_out,
              index_t n, float lr, float momentum, float weight_decay, bool nesterov);
void adam_step(const float* param, const float* grad, const float* m, const float* v, float* param_out, float* m_out,
               float* v_out, index_t n, double lr, std::int64_t step, double beta1, double beta2, double eps,
               double weight_decay, bool decoupled);

}  // namespace lamina::cuda
