// loss.h: regression and binary losses with their gradients, on flat contiguous float32 arrays.
//
//   mse: pred a, target y (n elements, n_examples = the leading dimension):
//     loss = sum (a - y)^2 / (2 n_examples)          grad = (a - y) / n_examples
//   binary_cross_entropy: prob p, target t (n elements), pc = clamp(p, eps, 1 - eps):
//     loss = -(1/n) sum [t log pc + (1 - t) log(1 - pc)]
//     grad = (pc - t) / (pc (1 - pc)) / n            (NaN loss when n == 0)
// Both return the loss (double) and write grad; the reductions are summed in a fixed order,
// so the loss does not depend on the thread count.
#pragma once
#include "lamina/common.h"

namespace lamina::cpu {
double mse(const float* pred, const float* target, float* grad, index_t n, index_t n_examples);
double binary_cross_entropy(const float* prob, const float* target, float* grad, index_t n,
                            float eps);
}  // namespace lamina::cpu
