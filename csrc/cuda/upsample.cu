// upsample.cu: nearest-neighbour upsampling (lamina/cuda/upsample.h), forward one thread per
// output, backward one thread per input cell summing its block (no atomics).
#include "launch.cuh"
#include "lamina/cuda/upsample.h"

namespace lamina::cuda {
namespace {

struct UpsampleBody {
  const float* x;
  float* y;
  index_t H, W, s;
  __device__ void operator()(index_t t) const {
    const index_t SW = W * s, SH = H * s;
    const index_t j = t % SW, i = (t / SW) % SH, p = t / (SW * SH);
    y[t] = x[(p * H + i / s) * W + j / s];
  }
};

struct UpsampleBackwardBody {
  const float* grad_y;
  float* grad_x;
  index_t H, W, s;
  __device__ void operator()(index_t t) const {
    const index_t w = t % W, h = (t / W) % H, p = t / (W * H);
    const index_t SW = W * s;
    const float* row = grad_y + (p * H * s + h * s) * SW + w * s;
    float acc = 0.0f;
    for (index_t a = 0; a < s; ++a)
      for (index_t b = 0; b < s; ++b) acc += row[a * SW + b];
    grad_x[t] = acc;
  }
};

}  // namespace

void upsample_nearest2d(const float* x, float* y, index_t planes, index_t H, index_t W, index_t s) {
  launch_each("upsample_nearest2d", UpsampleBody{x, y, H, W, s}, planes * H * s * W * s);
}

void upsample_nearest2d_backward(const float* grad_y, float* grad_x, index_t planes, index_t H, index_t W, index_t s) {
  launch_each("upsample_nearest2d_backward", UpsampleBackwardBody{grad_y, grad_x, H, W, s}, planes * H * W);
}

}  // namespace lamina::cuda
