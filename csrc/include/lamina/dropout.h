// dropout.h: inverted dropout with a counter-based generator.
//
//   forward:  mask[i] = keep(seed, i) ? 1 : 0,   y[i] = x[i] * mask[i] * scale
//   backward: grad_x[i] = grad_y[i] * mask[i] * scale,        scale = float(1 / (1 - p))
// keep(seed, i) = (h >> 32) >= ceil(p * 2^32) with h = mix64(mix64(seed + G) + i * G), mix64
// the splitmix64 finaliser and G = 0x9E3779B97F4A7C15: a pure function of the seed and the flat
// index, so the mask is the same for any thread count and ISA (and equals the NumPy twin's).
// Arrays are flat, contiguous, n elements.
#pragma once
#include <cstdint>

#include "lamina/common.h"

namespace lamina::cpu {
void dropout(const float* x, float* y, float* mask, index_t n, double p, std::uint64_t seed);
void dropout_backward(const float* grad_y, const float* mask, float* grad_x, index_t n, double p);
}  // namespace lamina::cpu
