// cuda/sgd.h: the optimiser updates, element-wise (bodies + launchers), the formulas of
// lamina.reference.sgd. The new values may go to other arrays than the old ones (param_out,
// velocity_out, m_out, v_out: Optimizer.step(keep_previous=True)); by default they are the same.
//
//   sgd:  g = grad + wd * param;  v = momentum * v + g;  g = nesterov ? g + momentum * v : v
//         param -= lr * g            (momentum 0: no velocity; a velocity_out gets velocity as it is)
//   adam: decoupled: param *= 1 - lr * wd, g = grad;  else g = grad + wd * param
//         m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g g
//         param -= lr_t * (m / (sqrt(v) / sqrt_bc2 + eps)),  lr_t = lr / (1 - b1^step)
// The operations, their order, the fused multiply-adds and the constants (formed in double) are
// the CPU kernel's (csrc/cpu/kernels/sgd.cpp), so a step gives the CPU's bits where the CPU uses
// FMA (its AVX2 and AVX-512 paths).
#pragma once
#include "lamina/cuda/common.h"

namespace lamina::cuda {

struct SgdBody {
  const float* param;
  const float* grad;
  const float* vel;  // null when momentum == 0 and no velocity_out
  float* param_out;
  float* vel_out;    // momentum 0: null, or where the unchanged velocity is copied
  float lr, momentum, weight_decay;
  bool nesterov;
  LAMINA_HD void operator()(index_t i) const {
    const float p = param[i];
    float g = weight_decay != 0.0f ? fmaf(weight_decay, p, grad[i]) : grad[i];
    if (momentum != 0.0f) {
      const float v = fmaf(momentum, vel[i], g);
      vel_out[i] = v;
      g = nesterov ? fmaf(momentum, v, g) : v;
    } else if (vel_out) {
      vel_out[i] = vel[i];  // momentum 0 leaves the velocity as it is: that is its new value
    }
    param_out[i] = fmaf(-lr, g, p);
  }
};

// Adam's constants, formed in double and rounded once, as the CPU kernel forms them.
enum AdamDecay : int { kAdamNoDecay = 0, kAdamL2 = 1, kAdamDecoupled = 2 };
struct AdamCoef {
  float step_size;  // lr / (1 - beta1^step)
  float bc2_sqrt;   // sqrt(1 - beta2^step)
  float beta1, one_minus_beta1, beta2, one_minus_beta2, eps, weight_decay;
  float decay;      // 1 - lr * weight_decay (decoupled)
  int mode;         // AdamDecay
};
inline AdamCoef adam_coef(double lr, std::int64_t step, double beta1, double beta2, double eps, double weight_decay,
                          bool decoupled) {
  AdamCoef c;
  const double s = static_cast<double>(step);
  c.step_size = static_cast<float>(lr / (1.0 - std::pow(beta1, s)));
  c.bc2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(beta2, s)));
  c.beta1 = static_cast<float>(beta1);
  c.one_minus_beta1 = static_cast<float>(1.0 - beta1);
  c.beta2 = static_cast<float>(beta2);
  c.one_minus_beta2 = static_cast<float>(1.0 - beta2);
  c.eps = static_cast<float>(eps);
  c.weight_decay = static_cast<float>(weight_decay);
  c.decay = static_cast<float>(1.0 - lr * weight_decay);
  c.mode = weight_decay == 0.0 ? kAdamNoDecay : decoupled ? kAdamDecoupled : kAdamL2;
  return c;
}

struct AdamBody {
  const float* param;
  const float* grad;
  const float* m;
  const float* v;
  float* param_out;
  float* m_out;
  float* v_out;
  AdamCoef c;
  LAMINA_HD void operator()(index_t i) const {
    float p = param[i];
    float g = grad[i];
    if (c.mode == kAdamDecoupled) p = p * c.decay;
    else if (c.mode == kAdamL2) g = fmaf(c.weight_decay, p, g);
    const float mi = fmaf(c.beta1, m[i], c.one_minus_beta1 * g);
    const float vi = fmaf(c.beta2, v[i], (c.one_minus_beta2 * g) * g);
    m_out[i] = mi;
    v_out[i] = vi;
    const float denom = sqrtf(vi) / c.bc2_sqrt + c.eps;
    param_out[i] = fmaf(-c.step_size, mi / denom, p);
  }
};

// Device launches of the bodies (csrc/cuda/sgd.cu), one grid-stride loop each.
void launch(const char* name, const SgdBody& body, index_t n);
void launch(const char* name, const AdamBody& body, index_t n);

}  // namespace lamina::cuda
