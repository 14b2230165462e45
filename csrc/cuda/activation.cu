// activation.cu: relu, sigmoid, tanh, leaky_relu and their backward passes
// (lamina/cuda/activation.h): one grid-stride launch each, one thread per element.
//   relu:     y = x > 0 ? x : 0 (NaN propagates)     relu_backward:     gx = x > 0 ? g : 0
//   sigmoid:  y = 1 / (1 + e^-x), from e = e^-|x|   sigmoid_backward:  gx = g y (1 - y)
//   tanh:     y = tanhf(x)                          tanh_backward:     gx = g (1 - y^2)
//   leaky_relu: y = x > 0 ? x : slope x             leaky_relu_backward: gx = x > 0 ? g : slope g
#include "launch.cuh"
#include "lamina/cuda/activation.h"

namespace lamina::cuda {
namespace {

struct Relu {
  __device__ float operator()(float x) const { return (x > 0.0f || x != x) ? x : 0.0f; }
};
struct Sigmoid {
  __device__ float operator()(float x) const {
    const float e = expf(-fabsf(x));  // in (0, 1]: no overflow for either sign
    return x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
  }
};
struct Tanh {
  __device__ float operator()(float x) const { return tanhf(x); }
};
struct LeakyRelu {
  float slope;
  __device__ float operator()(float x) const { return x > 0.0f ? x : x * slope; }
};

// g = dC/dy; s = x (relu, leaky_relu) or y (sigmoid, tanh).
struct ReluBackward {
  __device__ float operator()(float g, float s) const { return s > 0.0f ? g : 0.0f; }
};
struct SigmoidBackward {
  __device__ float operator()(float g, float s) const { return g * s * (1.0f - s); }
};
struct TanhBackward {
  __device__ float operator()(float g, float s) const { return g * (1.0f - s * s); }
};
struct LeakyReluBackward {
  float slope;
  __device__ float operator()(float g, float s) const { return s > 0.0f ? g : g * slope; }
};

template <class Op>
struct Forward {
  const float* x;
  float* y;
  Op op;
  __device__ void operator()(index_t i) const { y[i] = op(x[i]); }
};
template <class Op>
struct Backward {
  const float* grad_y;
  const float* saved;
  float* grad_x;
  Op op;
  __device__ void operator()(index_t i) const { grad_x[i] = op(grad_y[i], saved[i]); }
};

}  // namespace

void relu(const float* x, float* y, index_t n) { launch_each("relu", Forward<Relu>{x, y, {}}, n); }
void relu_backward(const float* grad_y, const float* x, float* grad_x, index_t n) {
  launch_each("relu_backward", Backward<ReluBackward>{grad_y, x, grad_x, {}}, n);
}
void sigmoid(const float* x, float* y, index_t n) { launch_each("sigmoid", Forward<Sigmoid>{x, y, {}}, n); }
void sigmoid_backward(const float* grad_y, const float* y, float* grad_x, index_t n) {
  launch_each("sigmoid_backward", Backward<SigmoidBackward>{grad_y, y, grad_x, {}}, n);
}
void tanh(const float* x, float* y, index_t n) { launch_each("tanh", Forward<Tanh>{x, y, {}}, n); }
void tanh_backward(const float* grad_y, const float* y, float* grad_x, index_t n) {
  launch_each("tanh_backward", Backward<TanhBackward>{grad_y, y, grad_x, {}}, n);
}
void leaky_relu(const float* x, float* y, index_t n, float slope) {
  launch_each("leaky_relu", Forward<LeakyRelu>{x, y, {slope}}, n);
}
void leaky_relu_backward(const float* grad_y, const float* x, float* grad_x, index_t n, float slope) {
  launch_each("leaky_relu_backward", Backward<LeakyReluBackward>{grad_y, x, grad_x, {slope}}, n);
}

}  // namespace lamina::cuda
