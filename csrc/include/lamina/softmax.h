// softmax.h: softmax and log-softmax along one axis, and the fused softmax cross-entropy.
//
//   softmax / log_softmax: x, y (outer, K, inner) contiguous, normalised over K (the axis):
//     y = exp(x - max) / sum exp(x - max)          (log: y = (x - max) - log sum exp(x - max))
//     inner == 1 is the row kernel (each row of K contiguous); inner > 1 sweeps the K rows of
//     each (K, inner) slab with per-column running max and sum (no transpose, no gather).
//   softmax_cross_entropy: logits (N, K), labels (N,) already checked to lie in [0, K),
//     grad (N, K) := d loss / d logits = (softmax(logits) - onehot(labels)) / N;
//     returns loss = mean over rows of -log softmax(logits)[label] (NaN when N == 0).
//   softmax_backward: grad_y, y = softmax(x), grad_x (outer, K, inner) contiguous:
//     grad_x = y * (grad_y - sum_K(grad_y * y)); grad_x may be grad_y or y itself.
// The forward ones are max-subtracted: finite for logits of +-1e30 and rows of equal huge values.
#pragma once
#include <cstdint>

#include "lamina/common.h"

namespace lamina::cpu {
void softmax(const float* x, float* y, index_t outer, index_t K, index_t inner);
void log_softmax(const float* x, float* y, index_t outer, index_t K, index_t inner);
double softmax_cross_entropy(const float* logits, const std::int64_t* labels, float* grad,
                             index_t N, index_t K);
void softmax_backward(const float* grad_y, const float* y, float* grad_x, index_t outer, index_t K,
                      index_t inner);
}  // namespace lamina::cpu
