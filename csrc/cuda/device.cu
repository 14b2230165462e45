// device.cu: the device, lamina's stream, the stream-ordered caching pool, copies, scratch.
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>

#include "launch.cuh"
#include "lamina/cuda/device.h"

namespace lamina::cuda {
namespace {

std::once_flag g_once;
bool g_initialized = false;
cudaStream_t g_stream = nullptr;
cudaMemPool_t g_pool = nullptr;
Scratch g_scratch{};
std::string g_init_error;

std::string message(cudaError_t e) {
  return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

void do_init() {
  cudaError_t e = cudaSetDevice(0);
  if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking);
  if (e == cudaSuccess) e = cudaDeviceGetDefaultMemPool(&g_pool, 0);
  if (e == cudaSuccess) {
    std::uint64_t keep = UINT64_MAX;  // freed memory stays in the pool
    e = cudaMemPoolSetAttribute(g_pool, cudaMemPoolAttrReleaseThreshold, &keep);
  }
  if (e == cudaSuccess) e = cudaMalloc(&g_scratch.partials, sizeof(double) * (kReduceBlocks + 2));
  if (e == cudaSuccess) e = cudaMallocHost(&g_scratch.host_result, 2 * sizeof(double));
  if (e != cudaSuccess) {
    g_init_error = "lamina.cuda: initialising the device failed (" + message(e) + ")";
    cudaGetLastError();
    return;
  }
  g_scratch.result = g_scratch.partials + kReduceBlocks;
  g_scratch.bad = reinterpret_cast<unsigned long long*>(g_scratch.partials + kReduceBlocks + 1);
  g_initialized = true;
}

}  // namespace

Status status() {
  Status s;
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  cudaRuntimeGetVersion(&s.runtime_version);
  cudaDriverGetVersion(&s.driver_version);
  s.error = static_cast<int>(e);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear it: not sticky
    s.count = 0;
    if (e == cudaErrorInsufficientDriver)
      s.reason = "no usable NVIDIA driver (cudaErrorInsufficientDriver: " + std::string(cudaGetErrorString(e)) +
                 "; driver version " + std::to_string(s.driver_version) + ", runtime " +
                 std::to_string(s.runtime_version) + ")";
    else if (e == cudaErrorNoDevice)
      s.reason = "no CUDA device (cudaErrorNoDevice: " + std::string(cudaGetErrorString(e)) + ")";
    else
      s.reason = "CUDA is not usable (" + message(e) + ")";
  } else if (n == 0) {
    s.reason = "no CUDA device (cudaGetDeviceCount returned 0)";
  }
  s.count = e == cudaSuccess ? n : 0;
  return s;
}

void init() {
  std::call_once(g_once, do_init);
  if (!g_initialized) throw Error(g_init_error);
}
bool initialized() { return g_initialized; }
void* stream() { return g_stream; }
Scratch& scratch() { return g_scratch; }

void check(int err, const char* what) {
  auto e = static_cast<cudaError_t>(err);
  if (e == cudaSuccess) return;
  cudaGetLastError();
  if (e == cudaErrorMemoryAllocation)
    throw OutOfMemory(std::string("lamina.cuda: out of device memory in ") + what);
  throw Error(std::string("lamina.cuda: ") + what + " failed (" + message(e) + ")");
}

void check_launch(const char* kernel) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw Error(std::string("lamina.cuda: kernel ") + kernel + " failed (" + message(e) + ")");
}

void* device_alloc(std::size_t nbytes) {
  init();
  void* p = nullptr;
  cudaError_t e = cudaMallocAsync(&p, nbytes, g_stream);
  if (e == cudaErrorMemoryAllocation) {  // give the pool's cached blocks back and try once more
    cudaGetLastError();
    cudaStreamSynchronize(g_stream);
    cudaMemPoolTrimTo(g_pool, 0);
    e = cudaMallocAsync(&p, nbytes, g_stream);
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      throw OutOfMemory("lamina.cuda: out of device memory allocating " + std::to_string(nbytes) + " bytes (pool: " +
                        std::to_string(pool_reserved()) + " bytes reserved, " + std::to_string(pool_used()) +
                        " in use)");
    }
  }
  check(e, "cudaMallocAsync");
  return p;
}

void device_free(void* p) {
  if (p && g_initialized) cudaFreeAsync(p, g_stream);
}

void memcpy_h2d(void* dst, const void* src, std::size_t n) {
  if (n) check(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, g_stream), "copy to the device");
}
void memcpy_d2h(void* dst, const void* src, std::size_t n) {
  if (n) check(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, g_stream), "copy to the host");
  check(cudaStreamSynchronize(g_stream), "copy to the host (synchronising)");
}
void memcpy_d2d(void* dst, const void* src, std::size_t n) {
  if (n) check(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, g_stream), "device copy");
}
void memset_async(void* dst, int value, std::size_t n) {
  if (n) check(cudaMemsetAsync(dst, value, n, g_stream), "cudaMemsetAsync");
}
void synchronize() { check(cudaStreamSynchronize(g_stream), "cudaStreamSynchronize"); }

void stream_wait_for_lamina(void* other) {
  cudaEvent_t ev;
  check(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), "cudaEventCreate");
  check(cudaEventRecord(ev, g_stream), "cudaEventRecord");
  check(cudaStreamWaitEvent(static_cast<cudaStream_t>(other), ev, 0), "cudaStreamWaitEvent");
  cudaEventDestroy(ev);
}

void lamina_wait_for(void* other) {
  cudaEvent_t ev;
  check(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), "cudaEventCreate");
  check(cudaEventRecord(ev, static_cast<cudaStream_t>(other)), "cudaEventRecord");
  check(cudaStreamWaitEvent(g_stream, ev, 0), "cudaStreamWaitEvent");
  cudaEventDestroy(ev);
}

std::size_t pool_reserved() {
  std::uint64_t v = 0;
  if (g_pool) cudaMemPoolGetAttribute(g_pool, cudaMemPoolAttrReservedMemCurrent, &v);
  return static_cast<std::size_t>(v);
}
std::size_t pool_used() {
  std::uint64_t v = 0;
  if (g_pool) cudaMemPoolGetAttribute(g_pool, cudaMemPoolAttrUsedMemCurrent, &v);
  return static_cast<std::size_t>(v);
}

__global__ void sum_partials_kernel(const double* partials, int count, double* result) {
  double acc = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partials[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) *result = acc;
}

void reset_bad() { memset_async(g_scratch.bad, 0xFF, sizeof(unsigned long long)); }

double read_result(index_t* bad) {
  // result and bad are adjacent: one 16-byte copy
  memcpy_d2h(g_scratch.host_result, g_scratch.result, 2 * sizeof(double));
  if (bad) {
    unsigned long long b;
    static_assert(sizeof(b) == sizeof(double), "");
    std::memcpy(&b, g_scratch.host_result + 1, sizeof(b));
    *bad = b == kNoBad ? -1 : static_cast<index_t>(b);
  }
  return g_scratch.host_result[0];
}

}  // namespace lamina::cuda
