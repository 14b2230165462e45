// cuda/common.h: what every CUDA kernel family shares, host and device alike.
//
// A kernel here is a *body* (a small struct whose operator()(i) computes output element or row
// i) plus a launch. The bodies are __host__ __device__ (LAMINA_HD), so the very same code is
// compiled by nvcc for the GPU and by the host compiler into lamina._cuda's host-side testing
// functions (csrc/bindings/bind_cuda_host.cpp), which run it over NumPy arrays and are
// compared with lamina.reference on machines without a GPU. Only the launch (grid-stride loop,
// block reductions, the tiled GEMM) needs a device.
//
// Launchers (declared per family in lamina/cuda/<family>.h, defined in csrc/cuda/<family>.cu)
// take raw device pointers, run on lamina's one stream (lamina::cuda::stream()), check the
// launch, and throw lamina::cuda::Error naming the kernel on failure.
#pragma once
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#if defined(__CUDACC__)
#define LAMINA_HD __host__ __device__ __forceinline__
#else
#define LAMINA_HD inline
#endif

namespace lamina::cuda {

using index_t = std::int64_t;

// A failed launch or CUDA call: what() names the kernel and CUDA's message.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// Device memory exhausted (the bindings turn it into MemoryError).
struct OutOfMemory : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Up to 8 dimensions of shape and element strides, passed to kernels by value.
constexpr int kMaxDims = 8;
struct Strided {
  int ndim;
  index_t shape[kMaxDims];
  index_t strides[kMaxDims];
  // Element offset of flat (row-major) index i.
  LAMINA_HD index_t offset(index_t i) const {
    index_t off = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const index_t s = shape[d];
      off += (i % s) * strides[d];
      i /= s;
    }
    return off;
  }
};

// Atomic add on the device, plain add on the host (the host test runs one thread).
LAMINA_HD void atomic_add(float* p, float v) {
#if defined(__CUDA_ARCH__)
  atomicAdd(p, v);
#else
  *p += v;
#endif
}
// Integer minimum / maximum into *p: atomic on the device (whatever the order, the same result),
// plain on the host.
LAMINA_HD void atomic_min_int(int* p, int v) {
#if defined(__CUDA_ARCH__)
  atomicMin(p, v);
#else
  if (v < *p) *p = v;
#endif
}
LAMINA_HD void atomic_max_int(int* p, int v) {
#if defined(__CUDA_ARCH__)
  atomicMax(p, v);
#else
  if (v > *p) *p = v;
#endif
}
// Records the smallest flat position i of a bad input (labels, indices) in *flag.
LAMINA_HD void record_bad(unsigned long long* flag, index_t i) {
#if defined(__CUDA_ARCH__)
  atomicMin(flag, static_cast<unsigned long long>(i));
#else
  if (static_cast<unsigned long long>(i) < *flag) *flag = static_cast<unsigned long long>(i);
#endif
}
constexpr unsigned long long kNoBad = ~0ull;

}  // namespace lamina::cuda
