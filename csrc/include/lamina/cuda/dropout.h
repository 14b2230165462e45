// cuda/dropout.h: inverted dropout on the device (csrc/cuda/dropout.cu), bit-identical to the
// CPU kernel (lamina/dropout.h, the same arguments) and lamina.reference.dropout:
//   mask[i] = (h_i >> 32) >= T,  T = ceil(p 2^32),  h_i = mix64(key + i G),  key = mix64(seed + G)
//   y = (x * mask) * scale,  grad_x = (grad_y * mask) * scale,  scale = float(1 / (1 - p))
// Arrays flat, contiguous, n elements; 0 <= p < 1.
#pragma once
#include <cstdint>

#include "lamina/cuda/common.h"

namespace lamina::cuda {

void dropout(const float* x, float* y, float* mask, index_t n, double p, std::uint64_t seed);
void dropout_backward(const float* grad_y, const float* mask, float* grad_x, index_t n, double p);

}  // namespace lamina::cuda
