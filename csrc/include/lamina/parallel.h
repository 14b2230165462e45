// parallel.h: the one way kernels fork threads. parallel_team(nt, fn) runs fn(tid, team) on
// up to nt OpenMP threads, inline when nt <= 1 (no thread start-up for small work); the team
// may be smaller than asked (nested regions), so work is always split over `team`.
//
// Exceptions: one escaping an OpenMP region calls std::terminate (the process aborts), so
// every thread's fn runs under a catch; the first exception caught on any thread is rethrown
// on the calling thread once the region has ended (std::bad_alloc from a per-thread workspace
// then reaches Python as MemoryError, as it does with one thread). Threads that did not fail
// finish their share; the results are discarded by the caller's exception.
#pragma once
#include <atomic>
#include <exception>
#include <utility>

#include "lamina/common.h"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace lamina {

// The first exception thrown by any thread of a team (thread-safe; kept until rethrown).
class TeamError {
 public:
  template <class F>
  void run(F&& f) noexcept {
    try {
      f();
    } catch (...) {
      if (!failed_.exchange(true)) error_ = std::current_exception();
    }
  }
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  void rethrow() const {
    if (failed()) std::rethrow_exception(error_);
  }

 private:
  std::atomic<bool> failed_{false};
  std::exception_ptr error_;
};

inline int team_thread() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}
inline int team_size() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

template <class F>
void parallel_team(int nt, F&& fn) {
  if (nt <= 1) {
    fn(0, 1);
    return;
  }
  TeamError err;
#pragma omp parallel num_threads(nt)
  {
    const int tid = team_thread(), team = team_size();
    err.run([&] { fn(tid, team); });
  }
  err.rethrow();
}

// first(tid, team) on every thread, a barrier, then reduce(tid, team) on every thread: for
// partial results that the whole team then combines. A barrier inside parallel_team's fn
// would deadlock when a thread left early by throwing; here every thread reaches it, and
// reduce runs only when no thread's `first` failed (the first error is rethrown after).
template <class F1, class F2>
void parallel_team_then(int nt, F1&& first, F2&& reduce) {
  if (nt <= 1) {
    first(0, 1);
    reduce(0, 1);
    return;
  }
  TeamError err;
#pragma omp parallel num_threads(nt)
  {
    const int tid = team_thread(), team = team_size();
    err.run([&] { first(tid, team); });
#pragma omp barrier
    if (!err.failed()) err.run([&] { reduce(tid, team); });
  }
  err.rethrow();
}

// Part `i` of `parts` of [0, n), cut at multiples of `align`.
inline std::pair<index_t, index_t> split_range(index_t n, int parts, int i, index_t align = 1) {
  index_t units = ceil_div(n, align);
  index_t lo = units * i / parts * align, hi = units * (i + 1) / parts * align;
  return {min_of(lo, n), min_of(hi, n)};
}

}  // namespace lamina
