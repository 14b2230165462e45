// cuda/conv.h: convolution as im2col over the whole batch + one GEMM (csrc/cuda/conv.cu).
//
//   cols (K = C*kH*kW, N*P), P = OH*OW:  cols[(c*kH + i)*kW + j, n*P + oh*OW + ow]
//                                         = xpad[n, c, oh*sh + i*dh, ow*sw + j*dw]
//   forward:  y (O, N*P) = w (O, K) @ cols + b[o], stored straight into y (N, O, OH, OW) by the
//             GEMM's "NCHW" epilogue (lamina/cuda/gemm.h), ReLU fused
//   backward: gy (O, N*P) = grad_y permuted;  grad_b = row sums of gy;
//             grad_w (O, K) = gy @ cols^T (split over the long N*P axis);
//             grad_cols (K, N*P) = w^T @ gy  ->  col2im  ->  grad_x
// col2im gathers (one thread per input pixel, no atomics): pixel (h, w) receives every column
// entry whose window offset (i, j) lands on it.
#pragma once
#include "lamina/cuda/common.h"

namespace lamina::cuda {

struct ConvGeom {
  index_t N, C, H, W, O, kH, kW, sh, sw, ph, pw, dh, dw, OH, OW;
  LAMINA_HD index_t K() const { return C * kH * kW; }
  LAMINA_HD index_t P() const { return OH * OW; }
};

struct Im2colBody {
  const float* x;
  float* cols;
  ConvGeom g;
  LAMINA_HD void operator()(index_t t) const {
    const index_t NP = g.N * g.P();
    const index_t col = t % NP, row = t / NP;
    const index_t ow = col % g.OW, oh = (col / g.OW) % g.OH, n = col / g.P();
    const index_t j = row % g.kW, i = (row / g.kW) % g.kH, c = row / (g.kW * g.kH);
    const index_t ih = oh * g.sh - g.ph + i * g.dh, iw = ow * g.sw - g.pw + j * g.dw;
    cols[t] = (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W) ? x[((n * g.C + c) * g.H + ih) * g.W + iw] : 0.0f;
  }
};

struct Col2imBody {
  const float* cols;  // (K, N*P)
  float* grad_x;      // (N, C, H, W)
  ConvGeom g;
  LAMINA_HD void operator()(index_t t) const {
    const index_t w = t % g.W, h = (t / g.W) % g.H, c = (t / (g.W * g.H)) % g.C, n = t / (g.W * g.H * g.C);
    const index_t NP = g.N * g.P();
    float acc = 0.0f;
    for (index_t i = 0; i < g.kH; ++i) {
      const index_t hp = h + g.ph - i * g.dh;  // = oh * sh
      if (hp < 0 || hp % g.sh) continue;
      const index_t oh = hp / g.sh;
      if (oh >= g.OH) continue;
      for (index_t j = 0; j < g.kW; ++j) {
        const index_t wp = w + g.pw - j * g.dw;
        if (wp < 0 || wp % g.sw) continue;
        const index_t ow = wp / g.sw;
        if (ow >= g.OW) continue;
        acc += cols[((c * g.kH + i) * g.kW + j) * NP + n * g.P() + oh * g.OW + ow];
      }
    }
    grad_x[t] = acc;
  }
};

// (N, O, P) -> (O, N, P): grad_y as the GEMMs want it.
struct NopToOnpBody {
  const float* src;
  float* dst;
  index_t N, O, P;
  LAMINA_HD void operator()(index_t t) const {  // t indexes dst
    const index_t p = t % P, n = (t / P) % N, o = t / (P * N);
    dst[t] = src[(n * O + o) * P + p];
  }
};

// out[r] = sum of row r of a (rows, cols), accumulated in float: grad_b.
struct RowSumBody {
  const float* a;
  float* out;
  index_t cols;
  LAMINA_HD void operator()(index_t r) const {
    const float* row = a + r * cols;
    float acc = 0.0f;
    for (index_t k = 0; k < cols; ++k) acc += row[k];
    out[r] = acc;
  }
};



// Device launches of the bodies (csrc/cuda/conv.cu), one grid-stride loop each.
void launch(const char* name, const Im2colBody& body, index_t n);
void launch(const char* name, const Col2imBody& body, index_t n);
void launch(const char* name, const NopToOnpBody& body, index_t n);
// out[r] = sum of row r of a (rows, cols): one block per row on the device.
void row_sums(const float* a, float* out, index_t rows, index_t cols);

}  // namespace lamina::cuda
