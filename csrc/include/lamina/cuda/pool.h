// cuda/pool.h: 2-D max and average pooling, NCHW (planes = N*C), bodies + launchers; the
// semantics of lamina.reference.pool: padding -inf (max) or 0 (avg, counted in the divisor);
// max gives the first maximum in row-major window order among input cells, a window with a
// NaN gives NaN and the last NaN's index; idx = ih * W + iw within the plane.
//   max_pool2d_backward scatters grad_y to grad_x[idx] (atomic adds into a zeroed grad_x) and
//   records the first out-of-range index position in *bad.
//   avg_pool2d_backward gathers (one thread per input cell, the windows that cover it).
#pragma once
#include "lamina/cuda/common.h"

namespace lamina::cuda {

struct PoolGeom {
  index_t planes, H, W, OH, OW, kh, kw, sh, sw, ph, pw;
};

struct MaxPoolBody {
  const float* x;
  float* y;
  std::int64_t* idx;
  PoolGeom g;
  LAMINA_HD void operator()(index_t t) const {
    const index_t ow = t % g.OW, oh = (t / g.OW) % g.OH, p = t / (g.OW * g.OH);
    const float* plane = x + p * g.H * g.W;
    float best = 0.0f;
    index_t bi = -1, nan_i = -1;
    for (index_t i = 0; i < g.kh; ++i) {
      const index_t ih = oh * g.sh - g.ph + i;
      if (ih < 0 || ih >= g.H) continue;
      for (index_t j = 0; j < g.kw; ++j) {
        const index_t iw = ow * g.sw - g.pw + j;
        if (iw < 0 || iw >= g.W) continue;
        const float v = plane[ih * g.W + iw];
        if (v != v) {
          nan_i = ih * g.W + iw;
        } else if (bi < 0 || v > best) {
          best = v;
          bi = ih * g.W + iw;
        }
      }
    }
    if (nan_i >= 0) {
      y[t] = plane[nan_i];
      idx[t] = nan_i;
    } else {
      y[t] = best;
      idx[t] = bi;
    }
  }
};

struct MaxPoolBackwardBody {
  const float* grad_y;
  const std::int64_t* idx;
  float* grad_x;  // zeroed
  unsigned long long* bad;
  index_t HW, OHW;
  LAMINA_HD void operator()(index_t t) const {
    const std::int64_t k = idx[t];
    if (k < 0 || k >= HW) {
      record_bad(bad, t);
      return;
    }
    atomic_add(grad_x + (t / OHW) * HW + k, grad_y[t]);
  }
};

struct AvgPoolBody {
  const float* x;
  float* y;
  PoolGeom g;
  LAMINA_HD void operator()(index_t t) const {
    const index_t ow = t % g.OW, oh = (t / g.OW) % g.OH, p = t / (g.OW * g.OH);
    const float* plane = x + p * g.H * g.W;
    float acc = 0.0f;
    for (index_t i = 0; i < g.kh; ++i) {
      const index_t ih = oh * g.sh - g.ph + i;
      if (ih < 0 || ih >= g.H) continue;
      for (index_t j = 0; j < g.kw; ++j) {
        const index_t iw = ow * g.sw - g.pw + j;
        if (iw >= 0 && iw < g.W) acc += plane[ih * g.W + iw];
      }
    }
    y[t] = acc / static_cast<float>(g.kh * g.kw);
  }
};

struct AvgPoolBackwardBody {
  const float* grad_y;
  float* grad_x;
  PoolGeom g;
  LAMINA_HD void operator()(index_t t) const {
    const index_t w = t % g.W, h = (t / g.W) % g.H, p = t / (g.W * g.H);
    const float* gy = grad_y + p * g.OH * g.OW;
    const float div = static_cast<float>(g.kh * g.kw);
    const index_t hp = h + g.ph, wp = w + g.pw;  // padded coordinates
    // windows oh with oh*sh <= hp < oh*sh + kh
    index_t oh0 = hp >= g.kh ? (hp - g.kh) / g.sh + 1 : 0, oh1 = hp / g.sh;
    index_t ow0 = wp >= g.kw ? (wp - g.kw) / g.sw + 1 : 0, ow1 = wp / g.sw;
    if (oh1 >= g.OH) oh1 = g.OH - 1;
    if (ow1 >= g.OW) ow1 = g.OW - 1;
    float acc = 0.0f;
    for (index_t oh = oh0; oh <= oh1; ++oh)
      for (index_t ow = ow0; ow <= ow1; ++ow) acc += gy[oh * g.OW + ow] / div;
    grad_x[t] = acc;
  }
};


// Device launches of the bodies (csrc/cuda/pool.cu), one grid-stride loop each.
void launch(const char* name, const MaxPoolBody& body, index_t n);
void launch(const char* name, const MaxPoolBackwardBody& body, index_t n);
void launch(const char* name, const AvgPoolBody& body, index_t n);
void launch(const char* name, const AvgPoolBackwardBody& body, index_t n);

}  // namespace lamina::cuda
