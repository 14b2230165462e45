// cuda/common.h: what every CUDA kernel family shares, on the host and in the kernels.
//
// Each family declares its launchers in lamina/cuda/<family>.h under the Python kernel's name
// (relu, conv2d, softmax_cross_entropy, ...), with the CPU kernel's arguments where the two
// agree (raw device pointers, sizes, the geometry structs of lamina/conv.h and lamina/pool.h),
// and defines them with its kernels in csrc/cuda/<family>.cu. A launcher queues its kernels on
// lamina's one stream (lamina::cuda::stream()), checks each launch, and throws
// lamina::cuda::Error naming the kernel on failure; one that returns a value (a sum, the first
// bad position) waits for it. The caller (csrc/bindings/bind_cuda_<family>.cpp) has validated
// the arguments and made lamina's device current.
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
  // Element offset of flat (row-major) index i, in the index type I of the launch (int where
  // extent() and the element count fit, see fits_index32 in launch.cuh).
  template <class I = index_t>
  LAMINA_HD I offset(I i) const {
    I off = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const I s = static_cast<I>(shape[d]);
      off += (i % s) * static_cast<I>(strides[d]);
      i /= s;
    }
    return off;
  }
  // The largest |offset| of an element (0 for an empty array).
  LAMINA_HD index_t extent() const {
    index_t e = 0;
    for (int d = 0; d < ndim; ++d) {
      if (shape[d] == 0) return 0;
      e += (shape[d] - 1) * (strides[d] < 0 ? -strides[d] : strides[d]);
    }
    return e;
  }
};

}  // namespace lamina::cuda
