// cuda/sgd.h: the optimiser updates, element-wise (bodies + launchers), the formulas of
// lamina.reference.sgd. The new values may go to other arrays than the old ones (param_out,
// velocity_out, m_out, v_out: Optimizer.step(keep_previous=True)); by default they are the same.
//
//   sgd:  g = grad + wd * param;  v = momentum * v + g;  g = nesterov ? g + momentum * v : v
//         param -= lr * g                                   (momentum 0: no velocity)
//   adam: decoupled: param *= 1 - lr * wd, g = grad;  else g = grad + wd * param
//         m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g g
//         param -= lr_t * m / (sqrt(v) / sqrt_bc2 + eps),  lr_t = lr / (1 - b1^step)
#pragma once
#include "lamina/cuda/common.h"

namespace lamina::cuda {

struct SgdBody {
  const float* param;
  const float* grad;
  const float* vel;  // null when momentum == 0
  float* param_out;
  float* vel_out;
  float lr, momentum, weight_decay;
  bool nesterov;
  LAMINA_HD void operator()(index_t i) const {
    const float p = param[i];
    float g = weight_decay != 0.0f ? grad[i] + weight_decay * p : grad[i];
    if (vel) {
      const float v = vel[i] * momentum + g;
      vel_out[i] = v;
      g = nesterov ? g + momentum * v : v;
    }
    param_out[i] = p - lr * g;
  }
};

struct AdamBody {
  const float* param;
  const float* grad;
  const float* m;
  const float* v;
  float* param_out;
  float* m_out;
  float* v_out;
  float lr_t;       // lr / (1 - beta1^step)
  float sqrt_bc2;   // sqrt(1 - beta2^step)
  float beta1, one_minus_beta1, beta2, one_minus_beta2, eps, weight_decay;
  float decay;      // 1 - lr * weight_decay (decoupled)
  bool decoupled;
  LAMINA_HD void operator()(index_t i) const {
    float p = param[i];
    float g = grad[i];
    if (decoupled) {
      if (weight_decay != 0.0f) p *= decay;
    } else if (weight_decay != 0.0f) {
      g = g + weight_decay * p;
    }
    const float mi = m[i] * beta1 + one_minus_beta1 * g;
    const float vi = v[i] * beta2 + one_minus_beta2 * g * g;
    m_out[i] = mi;
    v_out[i] = vi;
    param_out[i] = p - lr_t * mi / (sqrtf(vi) / sqrt_bc2 + eps);
  }
};


// Device launches of the bodies (csrc/cuda/sgd.cu), one grid-stride loop each.
void launch(const char* name, const SgdBody& body, index_t n);
void launch(const char* name, const AdamBody& body, index_t n);

}  // namespace lamina::cuda
