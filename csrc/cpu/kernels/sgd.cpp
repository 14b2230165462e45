// sgd.cpp: the SGD update (weight decay, momentum, Nesterov) in one pass, in place.
// Compiled once per ISA.
//
//   g = grad + wd * param;  v = mu * v + g;  g = nesterov ? g + mu * v : v;  param -= lr * g
//
// Each variant (weight decay or not, momentum or not, Nesterov or not) is its own loop, so the
// inner loop has no branches. Each line is one fused multiply-add (torch's CPU kernels fuse
// `a + alpha * b` the same way on AVX2/AVX-512).
#include "lamina/sgd.h"

#include "eltwise.h"

namespace lamina::cpu::LAMINA_ISA_NS {
namespace {

using namespace simd;

constexpr double kPerThread = 32 * 1024;

template <bool WD, bool MOM, bool NEST>
void sgd_range(float* param, const float* grad, float* vel, index_t n, float lr, float mu, float wd) {
  const vf vlr = set1(-lr), vmu = set1(mu), vwd = set1(wd);
  auto step = [&](vf p, vf g, vf& v) {
    if (WD) g = fma(vwd, p, g);
    if (MOM) {
      v = fma(vmu, v, g);
      g = NEST ? fma(vmu, v, g) : v;
    }
    return fma(vlr, g, p);
  };
  index_t i = 0;
  for (; i + W <= n; i += W) {
    vf v = MOM ? load(vel + i) : zero();
    store(param + i, step(load(param + i), load(grad + i), v));
    if (MOM) store(vel + i, v);
  }
  if (i < n) {
    const mask_t m = tail_mask(static_cast<int>(n - i));
    vf v = MOM ? load_mask(vel + i, m) : zero();
    store_mask(param + i, m, step(load_mask(param + i, m), load_mask(grad + i, m), v));
    if (MOM) store_mask(vel + i, m, v);
  }
}

using range_fn = void (*)(float*, const float*, float*, index_t, float, float, float);

}  // namespace

void sgd_step(float* param, const float* grad, float* velocity, index_t n, float lr, float momentum,
              float weight_decay, bool nesterov) {
  const bool wd = weight_decay != 0.0f, mom = momentum != 0.0f;
  range_fn f = wd ? (mom ? (nesterov ? &sgd_range<true, true, true> : &sgd_range<true, true, false>)
                         : &sgd_range<true, false, false>)
                  : (mom ? (nesterov ? &sgd_range<false, true, true> : &sgd_range<false, true, false>)
                         : &sgd_range<false, false, false>);
  parallel_range(n, threads_for(double(n), kPerThread), [&](index_t lo, index_t hi) {
    f(param + lo, grad + lo, mom ? velocity + lo : nullptr, hi - lo, lr, momentum, weight_decay);
  });
}

}  // namespace lamina::cpu::LAMINA_ISA_NS
