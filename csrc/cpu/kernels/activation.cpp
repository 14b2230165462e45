// activation.cpp: element-wise activations and their backward passes, compiled once per ISA.
//
//   relu        y = max(x, 0) (NaN propagates)      grad_x = grad_y * [x > 0]
//   leaky_relu  y = x > 0 ? x : slope * x           grad_x = grad_y * (x > 0 ? 1 : slope)
//   sigmoid     y = 1 / (1 + e^-x)                  grad_x = grad_y * y * (1 - y)
//   tanh        y = tanh(x)                         grad_x = grad_y * (1 - y^2)
// All arrays are flat, contiguous, n elements (any tensor shape). sigmoid / tanh use vmath.h
// (accuracy stated there). Split over threads only for large n: the cheap ones are memory
// bound and a thread start-up (a few us) costs more than ~100k elements of work.
#include "lamina/activation.h"

#include "eltwise.h"
#include "vmath.h"

namespace lamina::cpu::LAMINA_ISA_NS {
namespace {

using namespace simd;

// Elements per thread below which splitting does not pay.
constexpr double kCheapPerThread = 48 * 1024;      // relu, leaky_relu, every backward
constexpr double kTranscendentalPerThread = 8192;  // sigmoid / tanh forward, exp / log

template <class F>
void run1(const float* x, float* y, index_t n, double per_thread, F f) {
  parallel_range(n, threads_for(double(n), per_thread),
                 [&](index_t lo, index_t hi) { map1(x + lo, y + lo, hi - lo, f); });
}

template <class F>
void run2(const float* a, const float* b, float* y, index_t n, double per_thread, F f) {
  parallel_range(n, threads_for(double(n), per_thread),
                 [&](index_t lo, index_t hi) { map2(a + lo, b + lo, y + lo, hi - lo, f); });
}

}  // namespace

void relu(const float* x, float* y, index_t n) {
  run1(x, y, n, kCheapPerThread, [](vf v) { return vmath::relu(v); });
}

void relu_backward(const float* grad_y, const float* x, float* grad_x, index_t n) {
  run2(grad_y, x, grad_x, n, kCheapPerThread,
       [](vf g, vf v) { return vmath::select(vmath::gt(v, zero()), g, zero()); });
}

void sigmoid(const float* x, float* y, index_t n) {
  run1(x, y, n, kTranscendentalPerThread, [](vf v) { return vmath::sigmoid(v); });
}

void sigmoid_backward(const float* grad_y, const float* y, float* grad_x, index_t n) {
  run2(grad_y, y, grad_x, n, kCheapPerThread,
       [](vf g, vf v) { return mul(mul(g, v), sub(set1(1.0f), v)); });
}

void tanh(const float* x, float* y, index_t n) {
  run1(x, y, n, kTranscendentalPerThread, [](vf v) { return vmath::tanh(v); });
}

void tanh_backward(const float* grad_y, const float* y, float* grad_x, index_t n) {
  run2(grad_y, y, grad_x, n, kCheapPerThread,
       [](vf g, vf v) { return mul(g, sub(set1(1.0f), mul(v, v))); });
}

void leaky_relu(const float* x, float* y, index_t n, float slope) {
  const vf s = set1(slope);
  run1(x, y, n, kCheapPerThread,
       [s](vf v) { return vmath::select(vmath::gt(v, zero()), v, mul(v, s)); });
}

void leaky_relu_backward(const float* grad_y, const float* x, float* grad_x, index_t n, float slope) {
  const vf s = set1(slope);
  run2(grad_y, x, grad_x, n, kCheapPerThread,
       [s](vf g, vf v) { return vmath::select(vmath::gt(v, zero()), g, mul(g, s)); });
}

void vmath_apply(VMathFn fn, const float* x, float* y, index_t n) {
  switch (fn) {
    case VMathFn::exp:
      run1(x, y, n, kTranscendentalPerThread, [](vf v) { return vmath::exp(v); });
      break;
    case VMathFn::log:
      run1(x, y, n, kTranscendentalPerThread, [](vf v) { return vmath::log(v); });
      break;
    case VMathFn::exp_nonpos:
      run1(x, y, n, kTranscendentalPerThread, [](vf v) { return vmath::exp_nonpos(v); });
      break;
  }
}

}  // namespace lamina::cpu::LAMINA_ISA_NS
