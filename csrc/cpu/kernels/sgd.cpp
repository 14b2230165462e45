// sgd.cpp: the optimiser updates, each in one pass, in place or out of place (each state
// array is read from its input and its new value stored to its output, which is the input
// itself for an in-place step: the same loads and stores either way). Compiled once per ISA.
//
// SGD (weight decay, momentum, Nesterov):
//
//   g = grad + wd * param;  v = mu * v + g;  g = nesterov ? g + mu * v : v;  param -= lr * g
//
// Each variant (weight decay or not, momentum or not, Nesterov or not) is its own loop, so the
// inner loop has no branches. Each line is one fused multiply-add (torch's CPU kernels fuse
// `a + alpha * b` the same way on AVX2/AVX-512).
//
// Adam / AdamW (torch.optim.Adam / AdamW, no amsgrad):
//
//   AdamW: param *= 1 - lr wd, g = grad;   Adam: g = grad + wd * param
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   param -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps),  bc = 1 - b^step (in double)
//
// Three variants (no weight decay, L2, decoupled), each its own loop. The order of operations
// is PyTorch's (sqrt(v) divided by sqrt(bc2), then + eps, then m divided by that), so results
// agree with torch to a few ulp.
#include "lamina/sgd.h"

#include <cmath>

#include "eltwise.h"
#include "vmath.h"

namespace lamina::cpu::LAMINA_ISA_NS {
namespace {

using namespace simd;

constexpr double kPerThread = 32 * 1024;

template <bool WD, bool MOM, bool NEST>
void sgd_range(const float* param, const float* grad, const float* vel, float* param_out, float* vel_out,
               index_t n, float lr, float mu, float wd) {
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
    store(param_out + i, step(load(param + i), load(grad + i), v));
    if (MOM) store(vel_out + i, v);
  }
  if (i < n) {
    const mask_t m = tail_mask(static_cast<int>(n - i));
    vf v = MOM ? load_mask(vel + i, m) : zero();
    store_mask(param_out + i, m, step(load_mask(param + i, m), load_mask(grad + i, m), v));
    if (MOM) store_mask(vel_out + i, m, v);
  }
}

using range_fn = void (*)(const float*, const float*, const float*, float*, float*, index_t, float, float, float);

#if LAMINA_ISA_ID == 2
inline vf vsqrt(vf a) { return _mm512_sqrt_ps(a); }
#elif LAMINA_ISA_ID == 1
inline vf vsqrt(vf a) { return _mm256_sqrt_ps(a); }
#else
inline vf vsqrt(vf a) { return std::sqrt(a); }
#endif

struct AdamCoef {
  float decay;      // 1 - lr * wd (decoupled)
  float wd;         // wd (L2)
  float b1, c1;     // beta1, 1 - beta1
  float b2, c2;     // beta2, 1 - beta2
  float step_size;  // lr / bc1
  float bc2_sqrt;   // sqrt(bc2)
  float eps;
};

// WD: 0 none, 1 L2 (Adam), 2 decoupled (AdamW).
template <int WD>
void adam_range(const float* param, const float* grad, const float* m, const float* v, float* param_out,
                float* m_out, float* v_out, index_t n, const AdamCoef& c) {
  const vf decay = set1(c.decay), wd = set1(c.wd), b1 = set1(c.b1), c1 = set1(c.c1), b2 = set1(c.b2),
           c2 = set1(c.c2), neg_step = set1(-c.step_size), bc2s = set1(c.bc2_sqrt), eps = set1(c.eps);
  auto update = [&](vf p, vf g, vf& mv, vf& vv) {
    if (WD == 2) p = mul(p, decay);
    if (WD == 1) g = fma(wd, p, g);
    mv = fma(b1, mv, mul(c1, g));
    vv = fma(b2, vv, mul(mul(c2, g), g));
    const vf denom = add(vmath::div(vsqrt(vv), bc2s), eps);
    return fma(neg_step, vmath::div(mv, denom), p);
  };
  index_t i = 0;
  for (; i + W <= n; i += W) {
    vf mv = load(m + i), vv = load(v + i);
    store(param_out + i, update(load(param + i), load(grad + i), mv, vv));
    store(m_out + i, mv);
    store(v_out + i, vv);
  }
  if (i < n) {
    const mask_t k = tail_mask(static_cast<int>(n - i));
    vf mv = load_mask(m + i, k), vv = load_mask(v + i, k);
    store_mask(param_out + i, k, update(load_mask(param + i, k), load_mask(grad + i, k), mv, vv));
    store_mask(m_out + i, k, mv);
    store_mask(v_out + i, k, vv);
  }
}

}  // namespace

void sgd_step(const float* param, const float* grad, const float* velocity, float* param_out,
              float* velocity_out, index_t n, float lr, float momentum, float weight_decay, bool nesterov) {
  const bool wd = weight_decay != 0.0f, mom = momentum != 0.0f;
  range_fn f = wd ? (mom ? (nesterov ? &sgd_range<true, true, true> : &sgd_range<true, true, false>)
                         : &sgd_range<true, false, false>)
                  : (mom ? (nesterov ? &sgd_range<false, true, true> : &sgd_range<false, true, false>)
                         : &sgd_range<false, false, false>);
  parallel_range(n, threads_for(double(n), kPerThread), [&](index_t lo, index_t hi) {
    f(param + lo, grad + lo, mom ? velocity + lo : nullptr, param_out + lo, mom ? velocity_out + lo : nullptr,
      hi - lo, lr, momentum, weight_decay);
  });
}

void adam_step(const float* param, const float* grad, const float* m, const float* v, float* param_out,
               float* m_out, float* v_out, index_t n, double lr, std::int64_t step, double beta1,
               double beta2, double eps, double weight_decay, bool decoupled) {
  AdamCoef c;
  c.decay = static_cast<float>(1.0 - lr * weight_decay);
  c.wd = static_cast<float>(weight_decay);
  c.b1 = static_cast<float>(beta1);
  c.c1 = static_cast<float>(1.0 - beta1);
  c.b2 = static_cast<float>(beta2);
  c.c2 = static_cast<float>(1.0 - beta2);
  const double s = static_cast<double>(step);
  c.step_size = static_cast<float>(lr / (1.0 - std::pow(beta1, s)));
  c.bc2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(beta2, s)));
  c.eps = static_cast<float>(eps);
  auto f = weight_decay == 0.0 ? &adam_range<0> : decoupled ? &adam_range<2> : &adam_range<1>;
  parallel_range(n, threads_for(double(n), kPerThread / 2), [&](index_t lo, index_t hi) {
    f(param + lo, grad + lo, m + lo, v + lo, param_out + lo, m_out + lo, v_out + lo, hi - lo, c);
  });
}

}  // namespace lamina::cpu::LAMINA_ISA_NS
