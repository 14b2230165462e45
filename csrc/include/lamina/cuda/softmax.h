// cuda/softmax.h: softmax, log_softmax, softmax_backward along any axis, and softmax
// cross-entropy with its gradient in one pass (bodies + launchers).
// An array is seen as (outer, K, inner): the axis has length K and stride inner; row r of
// outer*inner starts at (r / inner) * K * inner + r % inner. A body computes one row (the host path
// and, on the device, rows along an inner axis); rows along the last axis run one warp per row on
// the device (csrc/cuda/softmax.cu). Max-subtracted
// (a NaN in a row propagates to the whole row, as in the reference).
#pragma once
#include "lamina/cuda/common.h"

namespace lamina::cuda {

struct Rows {
  index_t outer, K, inner;
  LAMINA_HD index_t base(index_t r) const { return (r / inner) * K * inner + r % inner; }
  LAMINA_HD index_t count() const { return outer * inner; }
};

LAMINA_HD float row_max(const float* x, index_t K, index_t st) {
  float m = x[0];
  for (index_t k = 1; k < K; ++k) {
    const float v = x[k * st];
    if (v > m || v != v) m = v;
    if (m != m) break;
  }
  return m;
}

struct SoftmaxBody {
  const float* x;
  float* y;
  Rows rows;
  bool log;
  LAMINA_HD void operator()(index_t r) const {
    const index_t b = rows.base(r), K = rows.K, st = rows.inner;
    const float m = row_max(x + b, K, st);
    float s = 0.0f;
    for (index_t k = 0; k < K; ++k) s += expf(x[b + k * st] - m);
    if (log) {
      const float ls = logf(s);
      for (index_t k = 0; k < K; ++k) y[b + k * st] = (x[b + k * st] - m) - ls;
    } else {
      for (index_t k = 0; k < K; ++k) y[b + k * st] = expf(x[b + k * st] - m) / s;
    }
  }
};

struct SoftmaxBackwardBody {
  const float* grad_y;
  const float* y;
  float* grad_x;
  Rows rows;
  LAMINA_HD void operator()(index_t r) const {
    const index_t b = rows.base(r), K = rows.K, st = rows.inner;
    float dot = 0.0f;
    for (index_t k = 0; k < K; ++k) dot += grad_y[b + k * st] * y[b + k * st];
    for (index_t k = 0; k < K; ++k) grad_x[b + k * st] = y[b + k * st] * (grad_y[b + k * st] - dot);
  }
};

// logits (N, K) contiguous, labels (N,) int32 or int64. Writes grad (N, K) =
// (softmax - onehot) / N and returns row r's loss -log softmax(logits_r)[label_r]; a label
// outside [0, K) is recorded in *bad (its row's grad and loss are then unspecified).
template <class L>
struct SoftmaxXentBody {
  const float* logits;
  const L* labels;
  float* grad;
  unsigned long long* bad;
  index_t K;
  float inv_n;
  LAMINA_HD double operator()(index_t r) const {
    const float* x = logits + r * K;
    float* g = grad + r * K;
    const L lab = labels[r];
    const bool ok = lab >= 0 && static_cast<index_t>(lab) < K;
    if (!ok) record_bad(bad, r);
    const float m = row_max(x, K, 1);
    float s = 0.0f;
    for (index_t k = 0; k < K; ++k) s += expf(x[k] - m);
    const float ls = logf(s);
    float picked = 0.0f;
    for (index_t k = 0; k < K; ++k) {
      const float lp = (x[k] - m) - ls;
      const bool hit = ok && k == static_cast<index_t>(lab);
      if (hit) picked = lp;
      g[k] = (expf(lp) - (hit ? 1.0f : 0.0f)) * inv_n;
    }
    return -static_cast<double>(picked);
  }
};

// mse: d = pred - target, grad = d / n (float), returns d*d in double (loss = sum / (2n)).
struct MseBody {
  const float* pred;
  const float* target;
  float* grad;
  float n;
  LAMINA_HD double operator()(index_t i) const {
    const float d = pred[i] - target[i];
    grad[i] = d / n;
    return static_cast<double>(d) * d;
  }
};

// binary cross-entropy on probabilities, clipped to [eps, 1 - eps]; returns the term
// t log pc + (1 - t) log(1 - pc) (loss = -sum / size), grad = (pc - t) / (pc (1 - pc)) / size.
struct BceBody {
  const float* prob;
  const float* target;
  float* grad;
  float lo, hi, size;
  LAMINA_HD double operator()(index_t i) const {
    float pc = prob[i];
    pc = pc < lo ? lo : (pc > hi ? hi : pc);  // (NaN stays NaN)
    const float t = target[i];
    const float term = t * logf(pc) + (1.0f - t) * log1pf(-pc);
    grad[i] = (pc - t) / (pc * (1.0f - pc)) / size;
    return static_cast<double>(term);
  }
};


// Device launches of the bodies (csrc/cuda/softmax.cu), one grid-stride loop each.
void launch(const char* name, const SoftmaxBody& body, index_t n);
void launch(const char* name, const SoftmaxBackwardBody& body, index_t n);
void launch_sum(const char* name, const SoftmaxXentBody<std::int64_t>& body, index_t n);  // sum left in scratch().result
void launch_sum(const char* name, const SoftmaxXentBody<std::int32_t>& body, index_t n);  // sum left in scratch().result
void launch_sum(const char* name, const MseBody& body, index_t n);  // sum left in scratch().result
void launch_sum(const char* name, const BceBody& body, index_t n);  // sum left in scratch().result

}  // namespace lamina::cuda
