// softmax.cpp: softmax / log-softmax along an axis, and softmax cross-entropy with its
// gradient fused into the same pass over each row. Compiled once per ISA.
//
//   x, y (outer, K, inner), normalised over K:
//     m = max_k x,  s = sum_k exp(x - m)
//     softmax     y = exp(x - m) / s
//     log_softmax y = (x - m) - log s        ((x - m) first: with m = 1e30 and x = m the
//                                             result is -log s, not 1e30 - (1e30 + log s) = 0)
//   cross-entropy, logits (N, K), labels (N,):
//     loss = mean_r [log s_r - (x_r[label_r] - m_r)],  grad_r = (exp(x_r - m_r) / s_r - onehot) / N
//   backward, grad_y and y = softmax(x) (outer, K, inner):
//     grad_x = y * (grad_y - d),  d = sum_k grad_y * y   (d in double: float blocks of 256
//     lanes for rows, double per column for slabs); two sweeps, the second element-wise, so
//     grad_x may be grad_y or y itself.
//
// Row kernel (inner == 1): three sweeps over a row (max; exp -> y and sum; scale), the row is
// read from memory once and stays in L1 for the later sweeps (K = 4096 is 16 KiB). Column
// kernel (inner > 1): the same three sweeps over the K rows of a (K, inner) slab, with the
// running max and sum of each column in per-thread scratch, so every access is contiguous.
// Tail lanes of a row are loaded as -inf (exp gives 0), so they change neither max nor sum.
#include "lamina/softmax.h"

#include <cmath>
#include <limits>
#include <vector>

#include "eltwise.h"
#include "vmath.h"
#include "workspace.h"

namespace lamina::cpu::LAMINA_ISA_NS {
namespace {

using namespace simd;

constexpr double kPerThread = 16384;  // elements (exp-bound) per thread before splitting
constexpr float kInf = std::numeric_limits<float>::infinity();

float row_max(const float* x, index_t K) {
  vf m0 = set1(-kInf), m1 = m0;
  index_t k = 0;
  for (; k + 2 * W <= K; k += 2 * W) {
    m0 = max(m0, load(x + k));
    m1 = max(m1, load(x + k + W));
  }
  for (; k + W <= K; k += W) m0 = max(m0, load(x + k));
  if (k < K) m0 = max(m0, vmath::load_or(x + k, tail_mask(static_cast<int>(K - k)), set1(-kInf)));
  return hmax(max(m0, m1));
}

// sum_k exp(x[k] - m); with Store, also e[k] = exp(x[k] - m). Float lanes sum blocks of
// kSumBlock elements, block totals are added in double: the sum's rounding error stays
// that of a 256-term float sum for any K.
constexpr index_t kSumBlock = 256;  // a multiple of 2W on every ISA
// `next` (or null): the row to be processed after this one, prefetched a cache line per
// vector while this row is computed from L1, so its load overlaps the exp work.
template <bool Store>
float exp_sum(const float* x, float* e, index_t K, float m, const float* next) {
  const vf vm = set1(m);
  double total = 0.0;
  for (index_t k0 = 0; k0 < K; k0 += kSumBlock) {
    const index_t k1 = min_of(K, k0 + kSumBlock);
    vf s0 = zero(), s1 = zero();
    index_t k = k0;
    for (; k + 2 * W <= k1; k += 2 * W) {
      if (next) {
        prefetch(next + k);
        prefetch(next + k + W);
      }
      vf e0 = vmath::exp_nonpos(sub(load(x + k), vm));
      vf e1 = vmath::exp_nonpos(sub(load(x + k + W), vm));
      if (Store) {
        store(e + k, e0);
        store(e + k + W, e1);
      }
      s0 = add(s0, e0);
      s1 = add(s1, e1);
    }
    for (; k + W <= k1; k += W) {
      vf e0 = vmath::exp_nonpos(sub(load(x + k), vm));
      if (Store) store(e + k, e0);
      s0 = add(s0, e0);
    }
    if (k < k1) {
      const mask_t tm = tail_mask(static_cast<int>(k1 - k));
      vf e0 = vmath::exp_nonpos(sub(vmath::load_or(x + k, tm, set1(-kInf)), vm));
      if (Store) store_mask(e + k, tm, e0);
      s0 = add(s0, e0);
    }
    total += double(hsum(add(s0, s1)));
  }
  return static_cast<float>(total);
}

// y[k] *= c
void scale_row(float* y, index_t K, float c) {
  map1(y, y, K, [v = set1(c)](vf a) { return mul(a, v); });
}

// y[k] = (x[k] - m) - c
void shift_row(const float* x, float* y, index_t K, float m, float c) {
  map1(x, y, K, [vm = set1(m), vc = set1(c)](vf a) { return sub(sub(a, vm), vc); });
}

void softmax_row(const float* x, float* y, index_t K, bool log, const float* next) {
  const float m = row_max(x, K);
  if (log) {
    const float s = exp_sum<false>(x, nullptr, K, m, next);
    shift_row(x, y, K, m, std::log(s));
  } else {
    const float s = exp_sum<true>(x, y, K, m, next);
    scale_row(y, K, 1.0f / s);
  }
}

// Columns [j0, j1) of the (K, inner) slab at x / y. scratch: 2 * w floats then w doubles
// (w = j1 - j0). Column sums run in float for kSumRows rows at a time, then go into double.
constexpr index_t kSumRows = 64;
void softmax_columns(const float* x, float* y, index_t K, index_t inner, index_t j0, index_t j1,
                     bool log, float* scratch) {
  const index_t w = j1 - j0;
  float* mx = scratch;      // running max of each column
  float* sm = scratch + w;  // partial sums of exp, then 1/sum (softmax) or log(sum) (log_softmax)
  double* acc = reinterpret_cast<double*>(scratch + round_up(2 * w, 2));
  for (index_t j = 0; j < w; j += W) {
    store_n(mx + j, w - j, set1(-kInf));
    store_n(sm + j, w - j, zero());
  }
  for (index_t j = 0; j < w; ++j) acc[j] = 0.0;
  for (index_t k = 0; k < K; ++k) {
    const float* xr = x + k * inner + j0;
    for (index_t j = 0; j < w; j += W)
      store_n(mx + j, w - j, max(load_n(mx + j, w - j, -kInf), load_n(xr + j, w - j, -kInf)));
  }
  for (index_t k = 0; k < K; ++k) {
    const float* xr = x + k * inner + j0;
    float* yr = y + k * inner + j0;
    for (index_t j = 0; j < w; j += W) {
      const index_t n = w - j;
      vf e = vmath::exp_nonpos(sub(load_n(xr + j, n, -kInf), load_n(mx + j, n, 0.0f)));
      if (!log) store_n(yr + j, n, e);
      store_n(sm + j, n, add(load_n(sm + j, n, 0.0f), e));
    }
    if ((k + 1) % kSumRows == 0 || k + 1 == K) {
      for (index_t j = 0; j < w; ++j) {
        acc[j] += double(sm[j]);
        sm[j] = 0.0f;
      }
    }
  }
  for (index_t j = 0; j < w; ++j)
    sm[j] = static_cast<float>(log ? std::log(acc[j]) : 1.0 / acc[j]);
  for (index_t k = 0; k < K; ++k) {
    const float* xr = x + k * inner + j0;
    float* yr = y + k * inner + j0;
    for (index_t j = 0; j < w; j += W) {
      const index_t n = w - j;
      vf c = load_n(sm + j, n, 0.0f);
      vf r = log ? sub(sub(load_n(xr + j, n, 0.0f), load_n(mx + j, n, 0.0f)), c)
                 : mul(load_n(yr + j, n, 0.0f), c);
      store_n(yr + j, n, r);
    }
  }
}

// sum_k g[k] * y[k]: float lanes over blocks of kSumBlock, block totals in double.
double dot_row(const float* g, const float* y, index_t K) {
  double total = 0.0;
  for (index_t k0 = 0; k0 < K; k0 += kSumBlock) {
    const index_t k1 = min_of(K, k0 + kSumBlock);
    vf s0 = zero(), s1 = zero();
    index_t k = k0;
    for (; k + 2 * W <= k1; k += 2 * W) {
      s0 = fma(load(g + k), load(y + k), s0);
      s1 = fma(load(g + k + W), load(y + k + W), s1);
    }
    for (; k + W <= k1; k += W) s0 = fma(load(g + k), load(y + k), s0);
    if (k < k1) {
      const mask_t tm = tail_mask(static_cast<int>(k1 - k));
      s0 = fma(load_mask(g + k, tm), load_mask(y + k, tm), s0);
    }
    total += double(hsum(add(s0, s1)));
  }
  return total;
}

// grad_x[k] = y[k] * (g[k] - d)
void softmax_backward_row(const float* g, const float* y, float* gx, index_t K, float d) {
  map2(g, y, gx, K, [vd = set1(d)](vf a, vf b) { return mul(b, sub(a, vd)); });
}

// Columns [j0, j1) of the (K, inner) slabs at g / y / gx; scratch: j1 - j0 doubles (acc) and
// j1 - j0 floats (d).
void softmax_backward_columns(const float* g, const float* y, float* gx, index_t K, index_t inner,
                              index_t j0, index_t j1, double* acc, float* d) {
  const index_t w = j1 - j0;
  for (index_t j = 0; j < w; ++j) acc[j] = 0.0;
  for (index_t k = 0; k < K; ++k) {
    const float* gr = g + k * inner + j0;
    const float* yr = y + k * inner + j0;
    for (index_t j = 0; j < w; ++j) acc[j] += double(gr[j]) * double(yr[j]);
  }
  for (index_t j = 0; j < w; ++j) d[j] = static_cast<float>(acc[j]);
  for (index_t k = 0; k < K; ++k) {
    const index_t off = k * inner + j0;
    for (index_t j = 0; j < w; ++j) gx[off + j] = y[off + j] * (g[off + j] - d[j]);
  }
}

// softmax or log_softmax (log) of x (outer, K, inner) over K.
void softmax_along(const float* x, float* y, index_t outer, index_t K, index_t inner, bool log) {
  if (outer <= 0 || K <= 0 || inner <= 0) return;
  const int nt = threads_for(double(outer) * K * inner, kPerThread);
  if (inner == 1) {
    parallel_for(outer, nt, [&](index_t r) {
      softmax_row(x + r * K, y + r * K, K, log, r + 1 < outer ? x + (r + 1) * K : nullptr);
    });
    return;
  }
  // Column chunks of at most 1024 (a multiple of W), more of them when outer alone cannot
  // keep every thread busy.
  index_t cw = min_of<index_t>(inner, 1024);
  if (outer * ceil_div(inner, cw) < nt) cw = min_of(inner, round_up(ceil_div(inner, nt), W));
  const index_t chunks = ceil_div(inner, cw);
  parallel_for(outer * chunks, nt, [&](index_t item) {
    const index_t o = item / chunks, j0 = (item % chunks) * cw, j1 = min_of(inner, j0 + cw);
    float* scratch = thread_buffer(2, workspace_floats(1, round_up(2 * cw, 2) + 2 * cw));
    const index_t off = o * K * inner;
    softmax_columns(x + off, y + off, K, inner, j0, j1, log, scratch);
  });
}

}  // namespace

void softmax(const float* x, float* y, index_t outer, index_t K, index_t inner) {
  softmax_along(x, y, outer, K, inner, false);
}

void log_softmax(const float* x, float* y, index_t outer, index_t K, index_t inner) {
  softmax_along(x, y, outer, K, inner, true);
}

void softmax_backward(const float* grad_y, const float* y, float* grad_x, index_t outer, index_t K,
                      index_t inner) {
  if (outer <= 0 || K <= 0 || inner <= 0) return;
  const int nt = threads_for(double(outer) * K * inner, 4 * kPerThread);  // no exp: cheaper
  if (inner == 1) {
    parallel_for(outer, nt, [&](index_t r) {
      const index_t off = r * K;
      const float d = static_cast<float>(dot_row(grad_y + off, y + off, K));
      softmax_backward_row(grad_y + off, y + off, grad_x + off, K, d);
    });
    return;
  }
  const index_t cw = min_of<index_t>(inner, 1024);
  const index_t chunks = ceil_div(inner, cw);
  parallel_for(outer * chunks, nt, [&](index_t item) {
    const index_t o = item / chunks, j0 = (item % chunks) * cw, j1 = min_of(inner, j0 + cw);
    float* scratch = thread_buffer(2, workspace_floats(3, cw));
    const index_t off = o * K * inner;
    softmax_backward_columns(grad_y + off, y + off, grad_x + off, K, inner, j0, j1,
                             reinterpret_cast<double*>(scratch), scratch + 2 * cw);
  });
}

double softmax_cross_entropy(const float* logits, const std::int64_t* labels, float* grad,
                             index_t N, index_t K) {
  if (N <= 0) return std::numeric_limits<double>::quiet_NaN();
  std::vector<double> row_loss(static_cast<std::size_t>(N));
  const float inv_n = static_cast<float>(1.0 / double(N));
  const int nt = threads_for(double(N) * K, kPerThread);
  parallel_for(N, nt, [&](index_t r) {
    const float* x = logits + r * K;
    float* g = grad + r * K;
    const index_t lab = labels[r];
    const float m = row_max(x, K);
    const float s = exp_sum<true>(x, g, K, m, r + 1 < N ? x + K : nullptr);  // g = exp(x - m) for now
    scale_row(g, K, static_cast<float>(1.0 / (double(s) * double(N))));
    g[lab] -= inv_n;
    row_loss[static_cast<std::size_t>(r)] = std::log(double(s)) - (double(x[lab]) - double(m));
  });
  double total = 0.0;  // summed in row order: the same loss for any thread count
  for (double l : row_loss) total += l;
  return total / double(N);
}

}  // namespace lamina::cpu::LAMINA_ISA_NS
