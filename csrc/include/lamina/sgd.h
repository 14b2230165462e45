// sgd.h: one SGD update in place, torch.optim.SGD's semantics (dampening 0, no maximize):
//
//   g = grad + weight_decay * param
//   if momentum != 0:  v = momentum * v + g;   g = nesterov ? g + momentum * v : v
//   param -= lr * g
//
// One pass over memory (param, grad, v read; param, v written). velocity may be null when
// momentum == 0. Arrays are flat, contiguous, n elements, and must not overlap.
#pragma once
#include "lamina/common.h"

namespace lamina::cpu {
void sgd_step(float* param, const float* grad, float* velocity, index_t n, float lr,
              float momentum, float weight_decay, bool nesterov);
}  // namespace lamina::cpu
