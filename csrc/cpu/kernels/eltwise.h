// eltwise.h: loops shared by the element-wise, row and pooling kernels (activations, dropout,
// losses, SGD, softmax, pooling): split a range over threads (on lamina/parallel.h), apply a
// lane function to contiguous float arrays with a masked tail (nothing is read or written
// past element n-1), and sum in a fixed order whatever the thread count.
#pragma once
#include <vector>

#include "lamina/common.h"
#include "lamina/cpu/simd.h"
#include "lamina/parallel.h"
#include "vmath.h"

namespace lamina::cpu::LAMINA_ISA_NS {

// body(lo, hi) over [0, n): one call when nt <= 1 (no thread start-up), else one contiguous
// part per thread of the team actually granted, cut at multiples of `align` elements (so each
// thread starts on its own cache lines).
template <class Body>
inline void parallel_range(index_t n, int nt, Body&& body, index_t align = 64) {
  if (n <= 0) return;
  parallel_team(nt, [&](int tid, int team) {
    auto [lo, hi] = split_range(n, team, tid, align);
    if (hi > lo) body(lo, hi);
  });
}

// body(i) for every i in [0, n), contiguous blocks of i per thread (a static schedule).
template <class Body>
inline void parallel_for(index_t n, int nt, Body&& body) {
  parallel_range(n, nt, [&](index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i) body(i);
  }, 1);
}

// y[i] = f(x[i]) for i in [0, n), f mapping a vector of lanes to a vector.
template <class F>
inline void map1(const float* x, float* y, index_t n, F f) {
  using namespace simd;
  index_t i = 0;
#pragma GCC unroll 4
  for (; i + W <= n; i += W) store(y + i, f(load(x + i)));
  if (i < n) {
    const mask_t m = tail_mask(static_cast<int>(n - i));
    store_mask(y + i, m, f(load_mask(x + i, m)));
  }
}

// y[i] = f(a[i], b[i]).
template <class F>
inline void map2(const float* a, const float* b, float* y, index_t n, F f) {
  using namespace simd;
  index_t i = 0;
#pragma GCC unroll 4
  for (; i + W <= n; i += W) store(y + i, f(load(a + i), load(b + i)));
  if (i < n) {
    const mask_t m = tail_mask(static_cast<int>(n - i));
    store_mask(y + i, m, f(load_mask(a + i, m), load_mask(b + i, m)));
  }
}

// The first n lanes (n <= W) at p: a full load when n == W, else masked with `fill` in the
// other lanes (nothing past p + n is touched).
inline simd::vf load_n(const float* p, index_t n, float fill) {
  using namespace simd;
  return n >= W ? load(p) : vmath::load_or(p, tail_mask(static_cast<int>(n)), set1(fill));
}
inline void store_n(float* p, index_t n, simd::vf v) {
  using namespace simd;
  if (n >= W) store(p, v);
  else store_mask(p, tail_mask(static_cast<int>(n)), v);
}

// sum over [0, n) of chunk(lo, hi) -> double, over fixed chunks of kReduceChunk elements
// whose results are added in order: the same total for any thread count.
constexpr index_t kReduceChunk = 16384;
template <class Chunk>
inline double chunked_sum(index_t n, double per_thread, Chunk&& chunk) {
  if (n <= 0) return 0.0;
  const index_t nch = ceil_div(n, kReduceChunk);
  std::vector<double> part(static_cast<std::size_t>(nch));
  const int nt = static_cast<int>(min_of<index_t>(threads_for(double(n), per_thread), nch));
  parallel_for(nch, nt, [&](index_t c) {
    part[static_cast<std::size_t>(c)] = chunk(c * kReduceChunk, min_of(n, (c + 1) * kReduceChunk));
  });
  double total = 0.0;
  for (double v : part) total += v;
  return total;
}

}  // namespace lamina::cpu::LAMINA_ISA_NS
