// dropout.cu: dropout and dropout_backward (lamina/cuda/dropout.h), one thread per element.
// mix64 is splitmix64's finaliser; each element needs only (seed, i), so any launch shape gives
// the CPU's mask. The key and the threshold are formed on the host.
#include <cmath>

#include "launch.cuh"
#include "lamina/cuda/dropout.h"

namespace lamina::cuda {
namespace {

constexpr std::uint64_t kGolden = 0x9E3779B97F4A7C15ull;

LAMINA_HD std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

struct DropoutBody {
  const float* x;
  float* y;
  float* mask;
  std::uint64_t key, threshold;
  float scale;
  __device__ void operator()(index_t i) const {
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
  __device__ void operator()(index_t i) const { grad_x[i] = grad_y[i] * mask[i] * scale; }
};

float inverse_keep(double p) { return static_cast<float>(1.0 / (1.0 - p)); }

}  // namespace

void dropout(const float* x, float* y, float* mask, index_t n, double p, std::uint64_t seed) {
  const auto threshold = static_cast<std::uint64_t>(std::ceil(p * 4294967296.0));
  launch_each("dropout", DropoutBody{x, y, mask, mix64(seed + kGolden), threshold, inverse_keep(p)}, n);
}

void dropout_backward(const float* grad_y, const float* mask, float* grad_x, index_t n, double p) {
  launch_each("dropout_backward", DropoutBackwardBody{grad_y, mask, grad_x, inverse_keep(p)}, n);
}

}  // namespace lamina::cuda
