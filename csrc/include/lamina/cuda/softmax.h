// cuda/softmax.h: softmax, log_softmax and softmax_backward along any axis, and softmax
// cross-entropy with its gradient in one pass, on the device (csrc/cuda/softmax.cu), with the CPU
// kernels' arguments (lamina/softmax.h).
// An array is seen as (outer, K, inner): the axis has length K and stride inner. Max-subtracted
// (a NaN in a row propagates to the whole row, as in the reference). Rows of 2^31 elements or
// more are an Error.
#pragma once
#include "lamina/cuda/common.h"

namespace lamina::cuda {

void softmax(const float* x, float* y, index_t outer, index_t K, index_t inner);
void log_softmax(const float* x, float* y, index_t outer, index_t K, index_t inner);
void softmax_backward(const float* grad_y, const float* y, float* grad_x, index_t outer, index_t K, index_t inner);
// logits (N, K) contiguous, labels (N,) int64 (labels_i64) or int32. Writes grad (N, K) =
// (softmax - onehot) / N and returns the mean loss -log softmax(logits_n)[label_n]; *bad
// receives the first row whose label is outside [0, K) (then nothing returned is meaningful), or
// -1. K == 0 reads no logit: every label is out of range.
double softmax_cross_entropy(const float* logits, const void* labels, bool labels_i64, float* grad, index_t N,
                             index_t K, index_t* bad);

}  // namespace lamina::cuda
