// sgd.h: one SGD update (in place or into output arrays), torch.optim.SGD's semantics (dampening 0, no maximize):
//
//   g = grad + weight_decay * param
//   if momentum != 0:  v = momentum * v + g;   g = nesterov ? g + momentum * v : v
//   param -= lr * g
//
// One pass over memory (param, grad, v read; param_out, velocity_out written). Out of place:
// the new values go to param_out / velocity_out and the inputs are only read; in place, each
// output is its input (the same pointer). velocity and velocity_out may be null when
// momentum == 0. Arrays are flat, contiguous, n elements; apart from an output being exactly
// its own input, none overlap.
//
// adam_step: one Adam / AdamW update in place, torch.optim.Adam / AdamW's semantics (no amsgrad):
//
//   decoupled (AdamW): param *= 1 - lr * weight_decay;  g = grad
//   else (Adam):       g = grad + weight_decay * param
//   m = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g * g
//   param -= (lr / (1 - beta1^step)) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
//
// step >= 1; the bias corrections are computed in double. One pass over memory; param, grad,
// m, v read, param_out, m_out, v_out written (each may be its input: in place), all flat,
// contiguous, n elements, not overlapping otherwise.
#pragma once
#include <cstdint>

#include "lamina/common.h"

namespace lamina::cpu {
void sgd_step(const float* param, const float* grad, const float* velocity, float* param_out,
              float* velocity_out, index_t n, float lr, float momentum, float weight_decay,
              bool nesterov);
void adam_step(const float* param, const float* grad, const float* m, const float* v, float* param_out,
               float* m_out, float* v_out, index_t n, double lr, std::int64_t step, double beta1,
               double beta2, double eps, double weight_decay, bool decoupled);
}  // namespace lamina::cpu
