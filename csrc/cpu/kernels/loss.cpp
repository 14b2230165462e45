// loss.cpp: mean-squared error and binary cross-entropy with their gradients, one pass over
// memory each (read pred/prob and target, write grad). Compiled once per ISA.
//
//   mse:  loss = sum (a - y)^2 / (2 n_examples),  grad = (a - y) / n_examples
//   bce:  pc = clamp(p, eps, 1 - eps)
//         loss = -(1/n) sum [t log pc + (1 - t) log(1 - pc)],  grad = (pc - t) / (pc (1 - pc)) / n
// log(1 - pc) is computed as log(u) * (-pc) / (u - 1), u = 1 - pc (Kahan's log1p): u - 1 is
// exact, so small probabilities keep full relative accuracy in the (1 - t) term.
// Sums: float lanes over blocks of 256 elements, blocks added in double, chunks of
// kReduceChunk added in order (eltwise.h) -- deterministic for any thread count.
#include "lamina/loss.h"

#include <limits>

#include "eltwise.h"
#include "vmath.h"

namespace lamina::cpu::LAMINA_ISA_NS {
namespace {

using namespace simd;

constexpr index_t kBlock = 256;             // float-summed run, a multiple of W
constexpr double kPerThread = 64 * 1024;    // elements before splitting over threads

// Runs lanes(lo_ptr_offset, mask, full) over [lo, hi) in vectors; returns the double sum of
// the float vectors it returns, per block of kBlock elements. Inactive tail lanes must
// contribute zero (the lane function gets the tail mask to ensure it).
template <class Lanes>
double blocked_sum(index_t lo, index_t hi, Lanes&& lanes) {
  double total = 0.0;
  for (index_t k0 = lo; k0 < hi; k0 += kBlock) {
    const index_t k1 = min_of(hi, k0 + kBlock);
    vf s = zero();
    index_t k = k0;
    for (; k + W <= k1; k += W) s = add(s, lanes(k, tail_mask(W), true));
    if (k < k1) s = add(s, lanes(k, tail_mask(static_cast<int>(k1 - k)), false));
    total += double(hsum(s));
  }
  return total;
}

}  // namespace

double mse(const float* pred, const float* target, float* grad, index_t n, index_t n_examples) {
  const vf inv = set1(static_cast<float>(1.0 / double(n_examples)));
  const double sq = chunked_sum(n, kPerThread, [&](index_t lo, index_t hi) {
    return blocked_sum(lo, hi, [&](index_t k, mask_t m, bool full) {
      // masked loads give 0 in inactive lanes: d = 0 there, nothing added
      vf d = full ? sub(load(pred + k), load(target + k))
                  : sub(load_mask(pred + k, m), load_mask(target + k, m));
      if (full) store(grad + k, mul(d, inv));
      else store_mask(grad + k, m, mul(d, inv));
      return mul(d, d);
    });
  });
  return sq / (2.0 * double(n_examples));
}

double binary_cross_entropy(const float* prob, const float* target, float* grad, index_t n, float eps) {
  if (n <= 0) return std::numeric_limits<double>::quiet_NaN();
  const vf lo = set1(eps), hi = set1(static_cast<float>(1.0 - double(eps)));
  const vf inv = set1(static_cast<float>(1.0 / double(n))), one = set1(1.0f);
  const double sum = chunked_sum(n, kPerThread / 4, [&](index_t lo_i, index_t hi_i) {
    return blocked_sum(lo_i, hi_i, [&](index_t k, mask_t m, bool full) {
      vf p = full ? load(prob + k) : load_mask(prob + k, m);
      vf t = full ? load(target + k) : load_mask(target + k, m);
      vf pc = min(hi, max(lo, p));  // NaN stays NaN (second operand)
      vf u = sub(one, pc);          // 1 - pc, never 1 since pc >= eps > 2^-24
      vf log_p = vmath::log(pc);
      vf log_u = mul(vmath::log(u), vmath::div(sub(zero(), pc), sub(u, one)));
      vf term = fma(t, log_p, mul(sub(one, t), log_u));
      vf g = mul(vmath::div(sub(pc, t), mul(pc, u)), inv);
      if (full) {
        store(grad + k, g);
        return term;
      }
      store_mask(grad + k, m, g);
      return vmath::select(vmath::as_cmask(m), term, zero());
    });
  });
  return -sum / double(n);
}

}  // namespace lamina::cpu::LAMINA_ISA_NS
