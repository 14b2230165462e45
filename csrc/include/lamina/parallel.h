// parallel.h: the one way kernels fork threads. parallel_team(nt, fn) runs fn(tid, team) on
// up to nt OpenMP threads, inline when nt <= 1 (no thread start-up for small work); the team
// may be smaller than asked (nested regions), so work is always split over `team`.
#pragma once
#include <utility>

#include "lamina/common.h"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace lamina {

template <class F>
void parallel_team(int nt, F&& fn) {
  if (nt <= 1) {
    fn(0, 1);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
#ifdef _OPENMP
    fn(omp_get_thread_num(), omp_get_num_threads());
#else
    fn(0, 1);
#endif
  }
}

// Part `i` of `parts` of [0, n), cut at multiples of `align`.
inline std::pair<index_t, index_t> split_range(index_t n, int parts, int i, index_t align = 1) {
  index_t units = ceil_div(n, align);
  index_t lo = units * i / parts * align, hi = units * (i + 1) / parts * align;
  return {min_of(lo, n), min_of(hi, n)};
}

}  // namespace lamina
