// cuda/activation.h: element-wise activations and their backward passes (bodies + launchers).
// Same formulas as lamina.reference.activation: relu and leaky_relu differentiate from x,
// sigmoid and tanh from y. Arrays flat, contiguous, n elements; out may be an input.
#pragma once
#include "lamina/cuda/common.h"

namespace lamina::cuda {

enum class Act : int { relu = 0, relu_backward, sigmoid, sigmoid_backward, tanh, tanh_backward,
                       leaky_relu, leaky_relu_backward };

LAMINA_HD float act_forward(Act k, float x, float slope) {
  switch (k) {
    case Act::relu: return (x > 0.0f || x != x) ? x : 0.0f;  // NaN propagates
    case Act::sigmoid: {
      const float e = expf(-fabsf(x));  // in (0, 1]: no overflow for either sign
      return x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    }
    case Act::tanh: return tanhf(x);
    case Act::leaky_relu: return x > 0.0f ? x : x * slope;
    default: return x;
  }
}

// g = dC/dy; s = x (relu, leaky_relu) or y (sigmoid, tanh).
LAMINA_HD float act_backward(Act k, float g, float s, float slope) {
  switch (k) {
    case Act::relu_backward: return s > 0.0f ? g : 0.0f;
    case Act::sigmoid_backward: return g * s * (1.0f - s);
    case Act::tanh_backward: return g * (1.0f - s * s);
    case Act::leaky_relu_backward: return s > 0.0f ? g : g * slope;
    default: return g;
  }
}

struct ActBody {
  Act kind;
  const float* a;  // x (forward) or grad_y (backward)
  const float* b;  // null (forward) or x / y (backward)
  float* out;
  float slope;
  LAMINA_HD void operator()(index_t i) const {
    out[i] = b ? act_backward(kind, a[i], b[i], slope) : act_forward(kind, a[i], slope);
  }
};

// y = a + alpha * b   (add),  y = alpha * a  (scale: b null)
struct AxpyBody {
  const float* a;
  const float* b;
  float* out;
  float alpha;
  LAMINA_HD void operator()(index_t i) const { out[i] = b ? a[i] + alpha * b[i] : alpha * a[i]; }
};

// Device launches of the bodies (csrc/cuda/activation.cu), one grid-stride loop each.
void launch(const char* name, const ActBody& body, index_t n);
void launch(const char* name, const AxpyBody& body, index_t n);

}  // namespace lamina::cuda
