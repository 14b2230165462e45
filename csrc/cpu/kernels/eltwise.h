// eltwise.h: loops shared by the element-wise kernels (activations, dropout, losses, SGD):
// split a flat range over threads, and apply a lane function to contiguous float arrays with
// a masked tail (nothing is read or written past element n-1).
#pragma once
#include <vector>

#include "lamina/common.h"
#include "lamina/cpu/simd.h"
#include "vmath.h"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace lamina::cpu::LAMINA_ISA_NS {

// Bounds of part i of `parts` over [0, n), cut at multiples of `align` elements (so each
// thread starts on its own cache lines).
inline void split_range(index_t n, int parts, int i, index_t align, index_t& lo, index_t& hi) {
  const index_t units = ceil_div(n, align);
  lo = min_of(units * i / parts * align, n);
  hi = min_of(units * (i + 1) / parts * align, n);
}

// body(lo, hi) over [0, n): one call when nt <= 1 (no thread start-up), else one contiguous
// part per thread of the team actually granted.
template <class Body>
inline void parallel_range(index_t n, int nt, Body&& body, index_t align = 64) {
  if (n <= 0) return;
  if (nt <= 1) {
    body(index_t(0), n);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
#ifdef _OPENMP
    const int tid = omp_get_thread_num(), team = omp_get_num_threads();
#else
    const int tid = 0, team = 1;
#endif
    index_t lo, hi;
    split_range(n, team, tid, align, lo, hi);
    if (hi > lo) body(lo, hi);
  }
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
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
  for (index_t c = 0; c < nch; ++c)
    part[static_cast<std::size_t>(c)] = chunk(c * kReduceChunk, min_of(n, (c + 1) * kReduceChunk));
  double total = 0.0;
  for (double v : part) total += v;
  return total;
}

}  // namespace lamina::cpu::LAMINA_ISA_NS
