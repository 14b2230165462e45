// sgd.h: one SGD update in place, torch.optim.SGD's semantics (dampening 0, no maximize):
//
//   g = grad + weight_decay * param
//   if momentum != 0:  v = momentum * v + g;   g = nesterov ? g + momentum * v : v
//   param -= lr * g
//
// One pass over memory (param, grad, v read; param, v written). velocity may be null when
// momentum == 0. Arrays are flat, contiguous, n elements, and must not overlap.
//
// adam_step: one Adam / AdamW update in place, torch.optim.Adam / AdamW's semantics (no amsgrad):
//
//   decoupled (AdamW): param *= 1 - lr * weight_decay;  g = grad
//   else (Adam):       g = grad + weight_decay * param
//   m = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g * g
//   param -= (lr / (1 - beta1^step)) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
//
// step >= 1; the bias corrections are computed in double. One pass over memory; param, grad,
// m, v flat, contiguous, n elements, not overlapping.
#pragma once
#include <cstdint>

#include "lamina/common.h"

namespace lamina::cpu {
void sgd_step(float* param, const float* grad, float* velocity, index_t n, float lr,
              float momentum, float weight_decay, bool nesterov);
void adam_step(float* param, const float* grad, float* m, float* v, index_t n, double lr,
               std::int64_t step, double beta1, double beta2, double eps, double weight_decay,
               bool decoupled);
}  // namespace lamina::cpu
