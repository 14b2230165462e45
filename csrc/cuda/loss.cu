// loss.cu: mse and binary_cross_entropy (lamina/cuda/loss.h): one thread per element writes the
// gradient and returns its term, summed in double by launch_reduce.
#include "launch.cuh"
#include "lamina/cuda/loss.h"

namespace lamina::cuda {
namespace {

// mse: d = pred - target, grad = d / n (float), returns d*d in double (loss = sum / (2n)).
struct MseBody {
  const float* pred;
  const float* target;
  float* grad;
  float n;
  __device__ double operator()(index_t i) const {
    const float d = pred[i] - target[i];
    grad[i] = d / n;
    return static_cast<double>(d) * d;
  }
};

// binary cross-entropy on probabilities, clipped to [eps, 1 - eps]; returns the term
// t log pc + (1 - t) log(1 - pc) (loss = -sum / size), grad = (pc - t) / (pc (1 - pc)) / size.
struct BceBody {
  const float* prob;
  const float* target;
  float* grad;
  float lo, hi, size;
  __device__ double operator()(index_t i) const {
    float pc = prob[i];
    pc = pc < lo ? lo : (pc > hi ? hi : pc);  // (NaN stays NaN)
    const float t = target[i];
    const float term = t * logf(pc) + (1.0f - t) * log1pf(-pc);
    grad[i] = (pc - t) / (pc * (1.0f - pc)) / size;
    return static_cast<double>(term);
  }
};

}  // namespace

double mse(const float* pred, const float* target, float* grad, index_t n, index_t n_examples) {
  return sum("mse", MseBody{pred, target, grad, static_cast<float>(n_examples)}, n) /
         (2.0 * static_cast<double>(n_examples));
}

double binary_cross_entropy(const float* prob, const float* target, float* grad, index_t n, double eps) {
  const float lo = static_cast<float>(eps), hi = static_cast<float>(1.0 - eps);
  return -sum("binary_cross_entropy", BceBody{prob, target, grad, lo, hi, static_cast<float>(n)}, n) /
         static_cast<double>(n);
}

}  // namespace lamina::cuda
