// launch.cuh: how the element-wise kernels of csrc/cuda/<family>.cu are launched. A *body* is a
// small struct whose __device__ operator()(i) computes output element (or row) i; launch_each
// runs it as a grid-stride loop over i < n; launch_reduce runs the same loop summing what it
// returns, in double, one partial per block, then one block over the partials, and sum() waits
// for that sum. Bodies that flag a bad input (a label, an index) record its smallest position
// with record_bad into scratch().bad. Included by the .cu files only.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>

#include "lamina/cuda/common.h"
#include "lamina/cuda/device.h"
#include "lamina/cuda/launch_plan.h"

// Every kernel launch goes through LAMINA_LAUNCH(name, grid, block, shmem, stream, kernel)(args):
// nvcc sees kernel<<<grid, block, shmem, stream>>>(args); the CPU emulation of the execution
// model (csrc/cuda/emu, LAMINA_CUDA_EMU) runs the same kernel there, checking the launch limits
// and naming the kernel `name` in its errors. Template kernels name their arguments.
#if defined(LAMINA_CUDA_EMU)
#define LAMINA_LAUNCH(name, grid, block, shmem, stream, ...) \
  ::lamina_emu::launcher((name), (grid), (block), (shmem), (stream), __VA_ARGS__)
#else
#define LAMINA_LAUNCH(name, grid, block, shmem, stream, ...) __VA_ARGS__<<<(grid), (block), (shmem), (stream)>>>
#endif

namespace lamina::cuda {

constexpr int kThreads = kEachThreads;
constexpr unsigned long long kNoBad = ~0ull;

// Records the smallest flat position i of a bad input (labels, indices) in *flag.
__device__ __forceinline__ void record_bad(unsigned long long* flag, index_t i) {
  atomicMin(flag, static_cast<unsigned long long>(i));
}

// The grid-stride loop, its index of type I: index_t, or 32-bit where the launcher has proved
// that every index the body forms fits (fits_index32), since 64-bit division and modulo cost
// tens of instructions on the GPU.
template <class F, class I = index_t>
__global__ void each_kernel(F f, I n) {
  for (I i = static_cast<I>(blockIdx.x) * static_cast<I>(blockDim.x) + static_cast<I>(threadIdx.x); i < n;
       i += static_cast<I>(blockDim.x) * static_cast<I>(gridDim.x))
    f(i);
}

// Whether element counts up to `largest` can be indexed in int32 by each_kernel: the largest
// index a body forms, plus one grid's stride (<= 65,536 blocks of 256 threads), stays below 2^31.
// force_index64() (lamina/cuda/device.h; tests) keeps every launch on the 64-bit path.
inline bool fits_index32(index_t largest) {
  return !force_index64() && largest >= 0 && largest <= index_t(2147483647) - index_t(65536) * 256;
}

// The launch geometry is lamina/cuda/launch_plan.h's (checked there against the device's limits).
inline unsigned blocks_for(index_t n, index_t cap = 65536) { return each_blocks(n, cap); }

template <class F, class I = index_t>
void launch_each(const char* name, const F& f, I n) {
  if (n <= 0) return;
  LAMINA_LAUNCH(name, blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream()), each_kernel<F, I>)(f, n);
  check_launch(name);
}

__device__ __forceinline__ double block_sum(double v) {
  __shared__ double warp_sums[kThreads / 32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  v = threadIdx.x < kThreads / 32 ? warp_sums[threadIdx.x] : 0.0;
  if (warp == 0)
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;  // valid in thread 0
}

template <class F>
__global__ void reduce_kernel(F f, index_t n, double* partials) {
  double acc = 0.0;
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<index_t>(blockDim.x) * gridDim.x)
    acc += f(i);
  acc = block_sum(acc);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

__global__ void sum_partials_kernel(const double* partials, int count, double* result);

// Sum over i < n of f(i) (double), left in scratch().result on the device (no sync).
template <class F>
void launch_reduce(const char* name, const F& f, index_t n) {
  Scratch& s = scratch();
  const unsigned blocks = blocks_for(n, kReduceBlocks);
  auto st = static_cast<cudaStream_t>(stream());
  LAMINA_LAUNCH(name, blocks, kThreads, 0, st, reduce_kernel<F>)(f, n, s.partials);
  check_launch(name);
  LAMINA_LAUNCH(name, 1, kThreads, 0, st, sum_partials_kernel)(s.partials, static_cast<int>(blocks), s.result);
  check_launch(name);
}

// The sum over i < n of f(i), waited for; `bad` (when given) receives the first position a body
// flagged since reset_bad(), or -1.
template <class F>
double sum(const char* name, const F& f, index_t n, index_t* bad = nullptr) {
  launch_reduce(name, f, n);
  return read_result(bad);
}

// The first position flagged by `pass` (a body run over i < n that calls record_bad), or -1.
template <class F>
index_t first_bad(const char* name, const F& pass, index_t n) {
  reset_bad();
  launch_each(name, pass, n);
  index_t bad = -1;
  read_result(&bad);
  return bad;
}

}  // namespace lamina::cuda
