// sgd.cu: sgd_step and adam_step (lamina/cuda/sgd.h), one thread per element.
#include <cmath>

#include "launch.cuh"
#include "lamina/cuda/sgd.h"

namespace lamina::cuda {
namespace {

struct SgdBody {
  const float* param;
  const float* grad;
  const float* vel;  // null when momentum == 0 and no velocity_out
  float* param_out;
  float* vel_out;    // momentum 0: null, or where the unchanged velocity is copied
  float lr, momentum, weight_decay;
  bool nesterov;
  __device__ void operator()(index_t i) const {
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
AdamCoef adam_coef(double lr, std::int64_t step, double beta1, double beta2, double eps, double weight_decay,
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
  __device__ void operator()(index_t i) const {
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

}  // namespace

void sgd_step(const float* param, const float* grad, const float* velocity, float* param_out, float* velocity_out,
              index_t n, float lr, float momentum, float weight_decay, bool nesterov) {
  launch_each("sgd_step", SgdBody{param, grad, velocity, param_out, velocity_out, lr, momentum, weight_decay,
                                  nesterov}, n);
}

void adam_step(const float* param, const float* grad, const float* m, const float* v, float* param_out, float* m_out,
               float* v_out, index_t n, double lr, std::int64_t step, double beta1, double beta2, double eps,
               double weight_decay, bool decoupled) {
  launch_each("adam_step", AdamBody{param, grad, m, v, param_out, m_out, v_out,
                                    adam_coef(lr, step, beta1, beta2, eps, weight_decay, decoupled)}, n);
}

}  // namespace lamina::cuda
