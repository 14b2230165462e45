// workspace.h: per-thread, 64-byte aligned scratch buffers that grow and are reused.
// Every OS thread (each Python thread, each OpenMP worker) owns its own, so kernels stay
// reentrant without allocating (and page-faulting) on every call.
//
// Failure: a buffer that cannot be had throws std::bad_alloc (Python: MemoryError), also on
// an OpenMP worker (lamina/parallel.h carries it out of the region). Lengths are formed with
// workspace_floats (checked arithmetic: a length that overflows 64 bits is a size_error,
// checked.h). workspace_testing_failures() (common.h) makes requests fail on purpose, for the
// tests (lamina._native._fail_next_workspace_alloc).
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

#include "lamina/checked.h"
#include "lamina/common.h"

namespace lamina::cpu::LAMINA_ISA_NS {

// a * b floats, for thread_buffer.
inline std::size_t workspace_floats(index_t a, index_t b) {
  return static_cast<std::size_t>(checked_mul(a, b, "the workspace (an argument's size)"));
}

class ThreadBuffer {
 public:
  ~ThreadBuffer() { std::free(p_); }
  float* get(std::size_t floats) {
    if (floats > cap_) {
      std::free(p_);
      p_ = nullptr;
      cap_ = 0;
      // Rounded up to whole cache lines; a length whose byte count cannot be formed is as
      // impossible to allocate as one the system refuses.
      if (floats > (SIZE_MAX - 64) / sizeof(float)) throw std::bad_alloc();
      std::size_t bytes = ((floats * sizeof(float) + 63) / 64) * 64;
      p_ = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!p_) throw std::bad_alloc();
      cap_ = bytes / sizeof(float);
    }
    return p_;
  }

 private:
  float* p_ = nullptr;
  std::size_t cap_ = 0;
};

// One pending injected failure consumed, if any (one relaxed load when none is pending).
inline bool take_injected_failure() {
  std::atomic<int>& n = workspace_testing_failures();
  int left = n.load(std::memory_order_relaxed);
  while (left > 0 && !n.compare_exchange_weak(left, left - 1, std::memory_order_relaxed)) {
  }
  return left > 0;
}

// slot: which of a thread's buffers (kernels that need two at once use 0 and 1; 4 holds a
// call's shared data on the calling thread, e.g. the Winograd filter transform).
inline float* thread_buffer(int slot, std::size_t floats) {
  thread_local ThreadBuffer bufs[5];
  if (take_injected_failure()) throw std::bad_alloc();
  return bufs[slot].get(floats);
}

}  // namespace lamina::cpu::LAMINA_ISA_NS
