// cuda/upsample.h: nearest-neighbour 2-D upsampling by s, NCHW (planes = N*C), bodies + launchers.
//   forward  y (planes, sH, sW):  y[p, i, j] = x[p, i / s, j / s]      (one thread per y element)
//   backward grad_x (planes, H, W): the sum of each s x s block of grad_y (one thread per grad_x)
#pragma once
#include "lamina/cuda/common.h"

namespace lamina::cuda {

struct UpsampleBody {
  const float* x;
  float* y;
  index_t H, W, s;
  LAMINA_HD void operator()(index_t t) const {
    const index_t SW = W * s, SH = H * s;
    const index_t j = t % SW, i = (t / SW) % SH, p = t / (SW * SH);
    y[t] = x[(p * H + i / s) * W + j / s];
  }
};

struct UpsampleBackwardBody {
  const float* grad_y;
  float* grad_x;
  index_t H, W, s;
  LAMINA_HD void operator()(index_t t) const {
    const index_t w = t % W, h = (t / W) % H, p = t / (W * H);
    const index_t SW = W * s;
    const float* row = grad_y + (p * H * s + h * s) * SW + w * s;
    float acc = 0.0f;
    for (index_t a = 0; a < s; ++a)
      for (index_t b = 0; b < s; ++b) acc += row[a * SW + b];
    grad_x[t] = acc;
  }
};


// Device launches of the bodies (csrc/cuda/upsample.cu), one grid-stride loop each.
void launch(const char* name, const UpsampleBody& body, index_t n);
void launch(const char* name, const UpsampleBackwardBody& body, index_t n);

}  // namespace lamina::cuda
