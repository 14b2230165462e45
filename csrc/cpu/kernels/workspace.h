// workspace.h: per-thread, 64-byte aligned scratch buffers that grow and are reused.
// Every OS thread (each Python thread, each OpenMP worker) owns its own, so kernels stay
// reentrant without allocating (and page-faulting) on every call.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <new>

namespace lamina::cpu::LAMINA_ISA_NS {

class ThreadBuffer {
 public:
  ~ThreadBuffer() { std::free(p_); }
  float* get(std::size_t floats) {
    if (floats > cap_) {
      std::free(p_);
      std::size_t bytes = ((floats * sizeof(float) + 63) / 64) * 64;
      p_ = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!p_) {
        cap_ = 0;
        throw std::bad_alloc();
      }
      cap_ = bytes / sizeof(float);
    }
    return p_;
  }

 private:
  float* p_ = nullptr;
  std::size_t cap_ = 0;
};

// slot: which of a thread's buffers (kernels that need two at once use 0 and 1).
inline float* thread_buffer(int slot, std::size_t floats) {
  thread_local ThreadBuffer bufs[4];
  return bufs[slot].get(floats);
}

}  // namespace lamina::cpu::LAMINA_ISA_NS
