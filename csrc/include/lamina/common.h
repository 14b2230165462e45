// common.h: index type, thread count and small helpers shared by every kernel.
//
// lamina/<family>.h holds a kernel family's shape structs and its entry points, declared
// once in namespace lamina::cpu with raw pointers and no ISA in sight. Implemented by
// csrc/cpu/kernels/<family>.cpp (once per ISA) behind csrc/cpu/dispatch/<family>.cpp (the
// switch on the path chosen at import); a CUDA backend's csrc/cuda/<family>.cu keeps the
// same stem and names.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace lamina {

using index_t = std::int64_t;

// Threads used by lamina's parallel regions. Initialised from OMP_NUM_THREADS /
// omp_get_max_threads() at import; set_num_threads() changes it for every Python thread
// (not only the caller's OpenMP ICV), so each parallel region passes it explicitly.
int num_threads();
void set_num_threads(int n);

// True when a problem of `work` units is worth splitting over threads (thread wake-up on
// 2 cores costs a few microseconds; below ~1 MFLOP of work one thread wins).
inline int threads_for(double work, double min_work_per_thread) {
  int t = num_threads();
  if (t <= 1 || work < 2.0 * min_work_per_thread) return 1;
  double cap = work / min_work_per_thread;
  return cap < t ? static_cast<int>(cap) : t;
}

// Testing aid: while positive, each per-thread workspace request (kernels/workspace.h) takes
// one and fails with std::bad_alloc, on whichever thread makes it; set by
// lamina._native._fail_next_workspace_alloc. One instance for every ISA's kernels.
inline std::atomic<int>& workspace_testing_failures() {
  static std::atomic<int> n{0};
  return n;
}

inline index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }
inline index_t round_up(index_t a, index_t b) { return ceil_div(a, b) * b; }
template <class T> inline T min_of(T a, T b) { return a < b ? a : b; }
template <class T> inline T max_of(T a, T b) { return a > b ? a : b; }

}  // namespace lamina
