// norm.cpp: batch normalisation, forward (statistics, running-stat update and normalisation in
// one call) and backward (grad_x, grad_weight, grad_bias in one call), float32, x viewed as
// (N, C, S). Compiled once per ISA; the formulas are in lamina/norm.h.
//
// Two layouts of the work, both parallel over channels (a thread owns whole channels, so no
// reduction crosses threads and the result does not depend on the thread count):
//
// - planes (S >= kPlaneMin, e.g. (N, C, H, W) feature maps): a channel is N rows of S values.
//   Its statistics are built chunk by chunk (chunks of at most kChunk values, in L1): the
//   chunk's mean and its sum of squared deviations from that mean in float, then merged into
//   the channel's (count, mean, M2) in double with Chan's formula, so the variance never
//   comes from E[x^2] - E[x]^2 and a large n loses no accuracy. The channel (N S values)
//   then is read again for y while it is still in L2. Backward likewise: one pass for
//   sum g and sum g (x - mean) (chunk sums in float, added in double), one for grad_x.
// - columns (S < kPlaneMin, e.g. (N, F) for BatchNorm1D): rows of x are contiguous over a
//   thread's channels, so the sums run down the columns with vector adds across them, in
//   float for kFlushRows rows and then added into double; the variance is a second pass
//   over the deviations from the mean (two-pass), then a pass for y.
#include "lamina/norm.h"

#include <cmath>
#include <cstring>

#include "eltwise.h"
#include "workspace.h"

namespace lamina::cpu::LAMINA_ISA_NS {
namespace {

using namespace simd;

constexpr index_t kChunk = 2048;      // plane path: values per chunk
constexpr index_t kPlaneMin = 16;     // spatial size from which the plane path is used
constexpr index_t kFlushRows = 64;    // column path: rows summed in float between double flushes
constexpr double kPerThread = 32 * 1024;  // elements

// Chan et al.'s pairwise merge of (count, mean, sum of squared deviations).
struct Moments {
  double n = 0.0, mean = 0.0, m2 = 0.0;
  void merge(double nb, double mb, double m2b) {
    const double n1 = n + nb, d = mb - mean;
    mean += d * (nb / n1);
    m2 += m2b + d * d * (n * nb / n1);
    n = n1;
  }
};

// sum of p[0, n)
inline float vsum(const float* p, index_t n) {
  vf a0 = zero(), a1 = zero(), a2 = zero(), a3 = zero();
  index_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    a0 = add(a0, load(p + i));
    a1 = add(a1, load(p + i + W));
    a2 = add(a2, load(p + i + 2 * W));
    a3 = add(a3, load(p + i + 3 * W));
  }
  for (; i + W <= n; i += W) a0 = add(a0, load(p + i));
  float t = hsum(add(add(a0, a1), add(a2, a3)));
  for (; i < n; ++i) t += p[i];
  return t;
}

// sum of (p[i] - m)^2 over [0, n)
inline float vsum_sqdev(const float* p, index_t n, float m) {
  const vf vm = set1(m);
  vf a0 = zero(), a1 = zero();
  index_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    const vf d0 = sub(load(p + i), vm), d1 = sub(load(p + i + W), vm);
    a0 = fma(d0, d0, a0);
    a1 = fma(d1, d1, a1);
  }
  for (; i + W <= n; i += W) {
    const vf d = sub(load(p + i), vm);
    a0 = fma(d, d, a0);
  }
  float t = hsum(add(a0, a1));
  for (; i < n; ++i) t += (p[i] - m) * (p[i] - m);
  return t;
}

// sum g and sum g (x - m) over [0, n) (masked lanes load g = 0: they add nothing)
inline void vsum_grad(const float* g, const float* x, index_t n, float m, float& sg, float& sgx) {
  const vf vm = set1(m);
  vf a = zero(), b = zero();
  index_t i = 0;
  for (; i + W <= n; i += W) {
    const vf gv = load(g + i);
    a = add(a, gv);
    b = fma(gv, sub(load(x + i), vm), b);
  }
  if (i < n) {
    const mask_t mk = tail_mask(static_cast<int>(n - i));
    const vf gv = load_mask(g + i, mk);
    a = add(a, gv);
    b = fma(gv, sub(load_mask(x + i, mk), vm), b);
  }
  sg = hsum(a);
  sgx = hsum(b);
}

// y[i] = x[i] * sc + sh
inline void affine_row(const float* x, float* y, index_t n, float sc, float sh) {
  const vf a = set1(sc), b = set1(sh);
  map1(x, y, n, [a, b](vf v) { return fma(v, a, b); });
}

// grad_x[i] = k (g[i] - cg) - c2 (x[i] - m)   (training)   or   k g[i]   (evaluation: c2 = cg = 0)
inline void grad_row(const float* g, const float* x, float* gx, index_t n, float k, float cg, float c2, float m) {
  const vf vk = set1(k), vcg = set1(cg), vc2 = set1(-c2), vm = set1(m);
  index_t i = 0;
  for (; i + W <= n; i += W)
    store(gx + i, fma(vc2, sub(load(x + i), vm), mul(vk, sub(load(g + i), vcg))));
  if (i < n) {
    const mask_t mk = tail_mask(static_cast<int>(n - i));
    store_mask(gx + i, mk, fma(vc2, sub(load_mask(x + i, mk), vm), mul(vk, sub(load_mask(g + i, mk), vcg))));
  }
}

// The channel's statistics settled: mean and invstd written, the running stats updated, and the
// (scale, shift) of y = x scale + shift returned.
struct Affine {
  float scale, shift;
};
Affine settle(index_t c, double mu, double var, double n, const float* weight, const float* bias,
              float* running_mean, float* running_var, float* mean, float* invstd, bool training, double momentum,
              double eps) {
  if (training) {
    if (running_mean != nullptr) {
      running_mean[c] = static_cast<float>((1.0 - momentum) * running_mean[c] + momentum * mu);
      running_var[c] = static_cast<float>((1.0 - momentum) * running_var[c] + momentum * var * (n / (n - 1.0)));
    }
  } else {
    mu = running_mean[c];
    var = running_var[c];
  }
  const double is = 1.0 / std::sqrt(var + eps);
  mean[c] = static_cast<float>(mu);
  invstd[c] = static_cast<float>(is);
  const double w = weight ? weight[c] : 1.0, b = bias ? bias[c] : 0.0;
  const double sc = w * is;
  return {static_cast<float>(sc), static_cast<float>(b - mu * sc)};
}

}  // namespace

void batch_norm(const float* x, const float* weight, const float* bias, float* running_mean, float* running_var,
                float* y, float* mean, float* invstd, index_t N, index_t C, index_t S, bool training,
                double momentum, double eps) {
  if (C <= 0) return;
  const index_t CS = C * S;
  const double n = double(N) * double(S);
  const int nt = threads_for(double(N) * double(CS), kPerThread);
  if (S >= kPlaneMin) {
    parallel_for(C, nt, [&](index_t c) {
      Moments mo;
      if (training) {
        for (index_t i = 0; i < N; ++i) {
          const float* row = x + i * CS + c * S;
          for (index_t off = 0; off < S; off += kChunk) {
            const index_t L = min_of(kChunk, S - off);
            const float m = vsum(row + off, L) / static_cast<float>(L);
            mo.merge(double(L), m, vsum_sqdev(row + off, L, m));
          }
        }
      }
      const Affine a = settle(c, mo.mean, training ? mo.m2 / n : 0.0, n, weight, bias, running_mean, running_var,
                              mean, invstd, training, momentum, eps);
      for (index_t i = 0; i < N; ++i) affine_row(x + i * CS + c * S, y + i * CS + c * S, S, a.scale, a.shift);
    });
    return;
  }
  parallel_range(C, nt, [&](index_t c0, index_t c1) {
    const index_t j0 = c0 * S, L = (c1 - c0) * S;
    float* facc = thread_buffer(0, workspace_floats(3, L));  // float sums | column means / scales | shifts
    float* col = facc + L;
    float* col2 = col + L;
    double* dacc = reinterpret_cast<double*>(thread_buffer(1, workspace_floats(2, L)));
    auto column_sums = [&](auto term) {  // dacc[j] = sum over rows of term(row, j-block)
      for (index_t j = 0; j < L; ++j) dacc[j] = 0.0;
      for (index_t r0 = 0; r0 < N; r0 += kFlushRows) {
        std::memset(facc, 0, static_cast<std::size_t>(L) * sizeof(float));
        const index_t r1 = min_of(N, r0 + kFlushRows);
        for (index_t i = r0; i < r1; ++i) term(x + i * CS + j0);
        for (index_t j = 0; j < L; ++j) dacc[j] += facc[j];
      }
    };
    if (training) {
      column_sums([&](const float* xr) { map2(facc, xr, facc, L, [](vf u, vf v) { return add(u, v); }); });
      for (index_t c = c0; c < c1; ++c) {
        double s = 0.0;
        for (index_t k = 0; k < S; ++k) s += dacc[(c - c0) * S + k];
        const float m = static_cast<float>(s / n);
        for (index_t k = 0; k < S; ++k) col[(c - c0) * S + k] = m;
      }
      column_sums([&](const float* xr) {
        map2(xr, col, col2, L, [](vf u, vf m) { const vf d = sub(u, m); return mul(d, d); });
        map2(facc, col2, facc, L, [](vf u, vf v) { return add(u, v); });
      });
    }
    for (index_t c = c0; c < c1; ++c) {
      double mu = 0.0, var = 0.0;
      if (training) {
        double q = 0.0;
        for (index_t k = 0; k < S; ++k) q += dacc[(c - c0) * S + k];
        mu = col[(c - c0) * S];
        var = q / n;
      }
      const Affine a = settle(c, mu, var, n, weight, bias, running_mean, running_var, mean, invstd, training,
                              momentum, eps);
      for (index_t k = 0; k < S; ++k) {
        col[(c - c0) * S + k] = a.scale;
        col2[(c - c0) * S + k] = a.shift;
      }
    }
    for (index_t i = 0; i < N; ++i) {
      const float* xr = x + i * CS + j0;
      float* yr = y + i * CS + j0;
      index_t j = 0;
      for (; j + W <= L; j += W) store(yr + j, fma(load(xr + j), load(col + j), load(col2 + j)));
      if (j < L) {
        const mask_t mk = tail_mask(static_cast<int>(L - j));
        store_mask(yr + j, mk, fma(load_mask(xr + j, mk), load_mask(col + j, mk), load_mask(col2 + j, mk)));
      }
    }
  }, 1);
}

void batch_norm_backward(const float* grad_y, const float* x, const float* weight, const float* mean,
                         const float* invstd, float* grad_x, float* grad_weight, float* grad_bias, index_t N,
                         index_t C, index_t S, bool training) {
  if (C <= 0) return;
  const index_t CS = C * S;
  const double n = double(N) * double(S);
  const int nt = threads_for(2.0 * double(N) * double(CS), kPerThread);
  // The per-channel constants of grad_x = k (g - cg) - c2 (x - mean), from the sums.
  auto constants = [&](index_t c, double sg, double sgx, float& k, float& cg, float& c2) {
    const double is = invstd[c], gw = sgx * is;
    grad_bias[c] = static_cast<float>(sg);
    grad_weight[c] = static_cast<float>(gw);
    const double kk = (weight ? weight[c] : 1.0) * is;
    k = static_cast<float>(kk);
    cg = training && n > 0 ? static_cast<float>(sg / n) : 0.0f;
    c2 = training && n > 0 ? static_cast<float>(kk * is * gw / n) : 0.0f;
  };
  if (S >= kPlaneMin) {
    parallel_for(C, nt, [&](index_t c) {
      const float m = mean[c];
      double sg = 0.0, sgx = 0.0;
      for (index_t i = 0; i < N; ++i) {
        const float* g = grad_y + i * CS + c * S;
        const float* xr = x + i * CS + c * S;
        for (index_t off = 0; off < S; off += kChunk) {
          float a, b;
          vsum_grad(g + off, xr + off, min_of(kChunk, S - off), m, a, b);
          sg += a;
          sgx += b;
        }
      }
      float k, cg, c2;
      constants(c, sg, sgx, k, cg, c2);
      for (index_t i = 0; i < N; ++i) {
        const index_t o = i * CS + c * S;
        grad_row(grad_y + o, x + o, grad_x + o, S, k, cg, c2, m);
      }
    });
    return;
  }
  parallel_range(C, nt, [&](index_t c0, index_t c1) {
    const index_t j0 = c0 * S, L = (c1 - c0) * S;
    float* buf = thread_buffer(0, workspace_floats(6, L));
    float* fg = buf;            // float column sums of g
    float* fgx = buf + L;       // ... of g (x - mean)
    float* cm = buf + 2 * L;    // column means, then per-column constants
    float* ck = buf + 3 * L;
    float* ccg = buf + 4 * L;
    float* cc2 = buf + 5 * L;
    double* dg = reinterpret_cast<double*>(thread_buffer(1, workspace_floats(4, L)));
    double* dgx = dg + L;
    for (index_t c = c0; c < c1; ++c)
      for (index_t k = 0; k < S; ++k) cm[(c - c0) * S + k] = mean[c];
    for (index_t j = 0; j < L; ++j) dg[j] = dgx[j] = 0.0;
    for (index_t r0 = 0; r0 < N; r0 += kFlushRows) {
      std::memset(fg, 0, static_cast<std::size_t>(2 * L) * sizeof(float));
      const index_t r1 = min_of(N, r0 + kFlushRows);
      for (index_t i = r0; i < r1; ++i) {
        const float* g = grad_y + i * CS + j0;
        const float* xr = x + i * CS + j0;
        index_t j = 0;
        for (; j + W <= L; j += W) {
          const vf gv = load(g + j);
          store(fg + j, add(load(fg + j), gv));
          store(fgx + j, fma(gv, sub(load(xr + j), load(cm + j)), load(fgx + j)));
        }
        for (; j < L; ++j) {
          fg[j] += g[j];
          fgx[j] += g[j] * (xr[j] - cm[j]);
        }
      }
      for (index_t j = 0; j < L; ++j) {
        dg[j] += fg[j];
        dgx[j] += fgx[j];
      }
    }
    for (index_t c = c0; c < c1; ++c) {
      double sg = 0.0, sgx = 0.0;
      for (index_t k = 0; k < S; ++k) {
        sg += dg[(c - c0) * S + k];
        sgx += dgx[(c - c0) * S + k];
      }
      float k, cg, c2;
      constants(c, sg, sgx, k, cg, c2);
      for (index_t s = 0; s < S; ++s) {
        const index_t j = (c - c0) * S + s;
        ck[j] = k;
        ccg[j] = cg;
        cc2[j] = -c2;
      }
    }
    for (index_t i = 0; i < N; ++i) {
      const float* g = grad_y + i * CS + j0;
      const float* xr = x + i * CS + j0;
      float* gx = grad_x + i * CS + j0;
      index_t j = 0;
      for (; j + W <= L; j += W)
        store(gx + j, fma(load(cc2 + j), sub(load(xr + j), load(cm + j)),
                          mul(load(ck + j), sub(load(g + j), load(ccg + j)))));
      for (; j < L; ++j) gx[j] = cc2[j] * (xr[j] - cm[j]) + ck[j] * (g[j] - ccg[j]);
    }
  }, 1);
}

}  // namespace lamina::cpu::LAMINA_ISA_NS
