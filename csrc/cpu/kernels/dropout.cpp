// dropout.cpp: inverted dropout, forward (mask from a counter-based hash) and backward.
// Compiled once per ISA.
//
//   mask[i] = (h_i >> 32) >= T ? 1 : 0,  T = ceil(p 2^32),  h_i = mix64(key + i G),
//   key = mix64(seed + G);  y = x * mask * scale,  grad_x = grad_y * mask * scale,
//   scale = float(1 / (1 - p)).
// mix64 is splitmix64's finaliser (two xor-shift-multiply rounds): consecutive counters give
// independent-looking 64-bit words, and each element's decision needs nothing but (seed, i),
// so threads and ISAs split the array any way and agree bit for bit. The hash loop is plain
// 64-bit integer code that the compiler vectorises per ISA (vpmullq on AVX-512DQ).
// y is computed as (x * mask) * scale, the same two roundings as the NumPy twin.
#include "lamina/dropout.h"

#include <cmath>

#include "eltwise.h"

namespace lamina::cpu::LAMINA_ISA_NS {
namespace {

constexpr std::uint64_t kGolden = 0x9E3779B97F4A7C15ull;
constexpr double kPerThread = 32 * 1024;

inline std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

void dropout(const float* x, float* y, float* mask, index_t n, double p, std::uint64_t seed) {
  const float scale = static_cast<float>(1.0 / (1.0 - p));
  const std::uint64_t key = mix64(seed + kGolden);
  const std::uint64_t threshold = static_cast<std::uint64_t>(std::ceil(p * 4294967296.0));
  parallel_range(n, threads_for(double(n), kPerThread), [&](index_t lo, index_t hi) {
    if (threshold == 0) {  // p = 0 (or below 2^-32): every unit kept, y = x
      for (index_t i = lo; i < hi; ++i) {
        mask[i] = 1.0f;
        y[i] = x[i] * 1.0f * scale;
      }
      return;
    }
    for (index_t i = lo; i < hi; ++i) {
      const std::uint64_t h = mix64(key + static_cast<std::uint64_t>(i) * kGolden);
      const float m = (h >> 32) >= threshold ? 1.0f : 0.0f;
      mask[i] = m;
      y[i] = x[i] * m * scale;
    }
  });
}

void dropout_backward(const float* grad_y, const float* mask, float* grad_x, index_t n, double p) {
  const float scale = static_cast<float>(1.0 / (1.0 - p));
  parallel_range(n, threads_for(double(n), kPerThread), [&](index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i) grad_x[i] = grad_y[i] * mask[i] * scale;
  });
}

}  // namespace lamina::cpu::LAMINA_ISA_NS
