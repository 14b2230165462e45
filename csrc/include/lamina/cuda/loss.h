// cuda/loss.h: the regression and binary losses on the device (csrc/cuda/loss.cu), with the CPU
// kernels' arguments (lamina/loss.h); softmax cross-entropy is in lamina/cuda/softmax.h.
//   mse:                  grad = (pred - target) / n_examples; returns sum (pred - target)^2 / (2 n_examples)
//   binary_cross_entropy: p clipped to [eps, 1 - eps]; returns -mean(t log p + (1 - t) log(1 - p)),
//                         grad = (p - t) / (p (1 - p)) / n
// Arrays flat, contiguous, n elements (n >= 1); the sums in double.
#pragma once
#include "lamina/cuda/common.h"

namespace lamina::cuda {

double mse(const float* pred, const float* target, float* grad, index_t n, index_t n_examples);
double binary_cross_entropy(const float* prob, const float* target, float* grad, index_t n, double eps);

}  // namespace lamina::cuda
