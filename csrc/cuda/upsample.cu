// upsample.cu: nearest-neighbour upsampling (lamina/cuda/upsample.h), forward one thread per
// output, backward one thread per input cell summing its block (no atomics).
#include "launch.cuh"
#include "lamina/cuda/upsample.h"

namespace lamina::cuda {
namespace {

// I: int where fits_index32 holds for the upsampled array, else index_t.
template <class I>
struct UpsampleBody {
  const float* x;
  float* y;
  I H, W, s;
  __device__ void operator()(I t) const {
    const I SW = W * s, SH = H * s;
    const I j = t % SW, i = (t / SW) % SH, p = t / (SW * SH);
    y[t] = x[(p * H + i / s) * W + j / s];
  }
};

template <class I>
struct UpsampleBackwardBody {
  const float* grad_y;
  float* grad_x;
  I H, W, s;
  __device__ void operator()(I t) const {
    const I w = t % W, h = (t / W) % H, p = t / (W * H);
    const I SW = W * s;
    const float* row = grad_y + (p * H * s + h * s) * SW + w * s;
    float acc = 0.0f;
    for (I a = 0; a < s; ++a)
      for (I b = 0; b < s; ++b) acc += row[a * SW + b];
    grad_x[t] = acc;
  }
};

}  // namespace

void upsample_nearest2d(const float* x, float* y, index_t planes, index_t H, index_t W, index_t s) {
  const index_t n = planes * H * s * W * s;  // the larger array
  if (fits_index32(n)) launch_each("upsample_nearest2d", UpsampleBody<int>{x, y, int(H), int(W), int(s)}, int(n));
  else launch_each("upsample_nearest2d", UpsampleBody<index_t>{x, y, H, W, s}, n);
}

void upsample_nearest2d_backward(const float* grad_y, float* grad_x, index_t planes, index_t H, index_t W, index_t s) {
  const index_t n = planes * H * W;
  if (fits_index32(planes * H * s * W * s))
    launch_each("upsample_nearest2d_backward", UpsampleBackwardBody<int>{grad_y, grad_x, int(H), int(W), int(s)}, int(n));
  else
    launch_each("upsample_nearest2d_backward", UpsampleBackwardBody<index_t>{grad_y, grad_x, H, W, s}, n);
}

}  // namespace lamina::cuda
