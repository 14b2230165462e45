// cuda/dropout.h: inverted dropout, bit-identical to the CPU kernel and lamina.reference.dropout:
//   mask[i] = (h_i >> 32) >= T,  T = ceil(p 2^32),  h_i = mix64(key + i G),  key = mix64(seed + G)
//   y = (x * mask) * scale,  grad_x = (grad_y * mask) * scale,  scale = float(1 / (1 - p))
// mix64 is splitmix64's finaliser; each element needs only (seed, i), so any launch shape
// gives the CPU's mask. key and T are formed on the host (dropout_key / dropout_threshold).
#pragma once
#include "lamina/cuda/common.h"

namespace lamina::cuda {

constexpr std::uint64_t kGolden = 0x9E3779B97F4A7C15ull;

LAMINA_HD std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
inline std::uint64_t dropout_key(std::uint64_t seed) { return mix64(seed + kGolden); }
inline std::uint64_t dropout_threshold(double p) {
  return static_cast<std::uint64_t>(std::ceil(p * 4294967296.0));
}

struct DropoutBody {
  const float* x;
  float* y;
  float* mask;
  std::uint64_t key, threshold;
  float scale;
  LAMINA_HD void operator()(index_t i) const {
    const std::uint64_t h = mix64(key + static_cast<std::uint64_t>(i) * kGolden);
    const float m = (threshold == 0 || (h >> 32) >= threshold) ? 1.0f : 0.0f;
    mask[i] = m;
    y[i] = x[i] * m * scale;
  }
};

struct DropoutBackwardBody {
  const float* grad_y;
  const float* mask;
  float* grad_x;
  float scale;
  LAMINA_HD void operator()(index_t i) const { grad_x[i] = grad_y[i] * mask[i] * scale; }
};


// Device launches of the bodies (csrc/cuda/dropout.cu), one grid-stride loop each.
void launch(const char* name, const DropoutBody& body, index_t n);
void launch(const char* name, const DropoutBackwardBody& body, index_t n);

}  // namespace lamina::cuda
