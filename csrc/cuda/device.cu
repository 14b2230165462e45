// device.cu: the device, lamina's stream, lamina's stream-ordered caching pool, copies, scratch,
// the device guard, events, and how failures are reported (lamina/cuda/device.h).
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "launch.cuh"
#include "lamina/cuda/device.h"

namespace lamina::cuda {
namespace {

constexpr int kDevice = 0;  // lamina's device

std::once_flag g_once;
bool g_initialized = false;
bool g_sync = false;
cudaStream_t g_stream = nullptr;
cudaMemPool_t g_pool = nullptr;
Scratch g_scratch{};
std::string g_init_error;
std::mutex g_deferred_mu;
std::string g_deferred;  // the first failure of a release that could not throw

std::string message(cudaError_t e) {
  return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

void do_init() {
  DeviceGuard guard;
  const char* sync = std::getenv("LAMINA_CUDA_SYNC");
  g_sync = sync && std::strcmp(sync, "1") == 0;
  cudaError_t e = cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking);
  if (e == cudaSuccess) {
    cudaMemPoolProps props{};
    props.allocType = cudaMemAllocationTypePinned;
    props.handleTypes = cudaMemHandleTypeNone;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = kDevice;
    e = cudaMemPoolCreate(&g_pool, &props);
  }
  if (e == cudaSuccess) {
    std::uint64_t keep = UINT64_MAX;  // freed memory stays in lamina's pool until empty_cache()
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

void raise_deferred() {
  std::string m;
  {
    std::lock_guard<std::mutex> lock(g_deferred_mu);
    if (g_deferred.empty()) return;
    m.swap(g_deferred);
  }
  throw Error(m);
}

}  // namespace

DeviceGuard::DeviceGuard() {
  int current = -1;
  if (cudaGetDevice(&current) != cudaSuccess) {
    cudaGetLastError();
    current = -1;
  }
  if (current != kDevice && cudaSetDevice(kDevice) == cudaSuccess) previous_ = current;
  else cudaGetLastError();
}

DeviceGuard::~DeviceGuard() {
  if (previous_ >= 0) cudaSetDevice(previous_);
}

int device_id() { return kDevice; }
int current_device() {
  int d = -1;
  check(cudaGetDevice(&d), "cudaGetDevice");
  return d;
}
bool sync_mode() { return g_sync; }

void defer_error(int err, const char* what) noexcept {
  const auto e = static_cast<cudaError_t>(err);
  if (e == cudaSuccess) return;
  try {
    std::lock_guard<std::mutex> lock(g_deferred_mu);
    if (g_deferred.empty())
      g_deferred = std::string("lamina.cuda: ") + what + " failed earlier (" + message(e) + ")";
  } catch (...) {  // no memory for the message: the error stays CUDA's own, sticky ones reappear
  }
}

Event::Event() {
  DeviceGuard guard;
  cudaEvent_t ev = nullptr;
  check(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), "cudaEventCreate");
  e_ = ev;
}
Event::~Event() {
  if (e_) {
    DeviceGuard guard;
    defer_error(cudaEventDestroy(static_cast<cudaEvent_t>(e_)), "cudaEventDestroy");
  }
}
void Event::destroy() {
  if (!e_) return;
  DeviceGuard guard;
  const cudaError_t e = cudaEventDestroy(static_cast<cudaEvent_t>(e_));
  e_ = nullptr;
  check(e, "cudaEventDestroy");
}

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
bool& force_index64() {
  static bool v = false;
  return v;
}

void check(int err, const char* what) {
  raise_deferred();
  auto e = static_cast<cudaError_t>(err);
  if (e == cudaSuccess) return;
  cudaGetLastError();
  if (e == cudaErrorMemoryAllocation)
    throw OutOfMemory(std::string("lamina.cuda: out of device memory in ") + what);
  throw Error(std::string("lamina.cuda: ") + what + " failed (" + message(e) + ")");
}

void check_launch(const char* kernel) {
  raise_deferred();
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess && g_sync) {
    DeviceGuard guard;
    e = cudaStreamSynchronize(g_stream);
    if (e != cudaSuccess) cudaGetLastError();
  }
  if (e != cudaSuccess) throw Error(std::string("lamina.cuda: kernel ") + kernel + " failed (" + message(e) + ")");
}

void* device_alloc(std::size_t nbytes) {
  init();
  DeviceGuard guard;
  void* p = nullptr;
  cudaError_t e = cudaMallocFromPoolAsync(&p, nbytes, g_pool, g_stream);
  if (e == cudaErrorMemoryAllocation) {  // give the pool's cached blocks back and try once more
    cudaGetLastError();
    cudaStreamSynchronize(g_stream);
    cudaMemPoolTrimTo(g_pool, 0);
    e = cudaMallocFromPoolAsync(&p, nbytes, g_pool, g_stream);
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      throw OutOfMemory("lamina.cuda: out of device memory allocating " + std::to_string(nbytes) + " bytes (pool: " +
                        std::to_string(pool_reserved()) + " bytes reserved, " + std::to_string(pool_used()) +
                        " in use)");
    }
  }
  check(e, "cudaMallocFromPoolAsync");
  return p;
}

void device_free(void* p) noexcept {
  if (!p || !g_initialized) return;
  DeviceGuard guard;
  defer_error(cudaFreeAsync(p, g_stream), "cudaFreeAsync");
}

void memcpy_h2d(void* dst, const void* src, std::size_t n) {
  DeviceGuard guard;
  if (n) check(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, g_stream), "copy to the device");
}
void memcpy_d2h(void* dst, const void* src, std::size_t n) {
  DeviceGuard guard;
  if (n) check(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, g_stream), "copy to the host");
  check(cudaStreamSynchronize(g_stream), "copy to the host (synchronising)");
}
void memcpy_d2d(void* dst, const void* src, std::size_t n) {
  DeviceGuard guard;
  if (n) check(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, g_stream), "device copy");
}
void memset_async(void* dst, int value, std::size_t n) {
  DeviceGuard guard;
  if (n) check(cudaMemsetAsync(dst, value, n, g_stream), "cudaMemsetAsync");
}
void synchronize() {
  DeviceGuard guard;
  check(cudaStreamSynchronize(g_stream), "cudaStreamSynchronize");
}

void stream_wait_for_lamina(void* other) {
  DeviceGuard guard;
  Event ev;
  check(cudaEventRecord(static_cast<cudaEvent_t>(ev.get()), g_stream), "cudaEventRecord");
  check(cudaStreamWaitEvent(static_cast<cudaStream_t>(other), static_cast<cudaEvent_t>(ev.get()), 0),
        "cudaStreamWaitEvent");
  ev.destroy();
}

void lamina_wait_for(void* other) {
  DeviceGuard guard;
  Event ev;
  check(cudaEventRecord(static_cast<cudaEvent_t>(ev.get()), static_cast<cudaStream_t>(other)), "cudaEventRecord");
  check(cudaStreamWaitEvent(g_stream, static_cast<cudaEvent_t>(ev.get()), 0), "cudaStreamWaitEvent");
  ev.destroy();
}

void lamina_wait_for_release(void* other) noexcept {
  if (!g_initialized) return;
  DeviceGuard guard;
  cudaEvent_t ev = nullptr;
  cudaError_t e = cudaEventCreateWithFlags(&ev, cudaEventDisableTiming);
  if (e == cudaSuccess) e = cudaEventRecord(ev, static_cast<cudaStream_t>(other));
  if (e == cudaSuccess) e = cudaStreamWaitEvent(g_stream, ev, 0);
  if (e != cudaSuccess) cudaGetLastError();
  defer_error(e, "ordering a release after the consumer's stream (cudaEventRecord / cudaStreamWaitEvent)");
  if (ev) defer_error(cudaEventDestroy(ev), "cudaEventDestroy");
}

namespace {
std::size_t pool_attr(cudaMemPool_t pool, cudaMemPoolAttr attr) {
  std::uint64_t v = 0;
  if (pool) check(cudaMemPoolGetAttribute(pool, attr, &v), "cudaMemPoolGetAttribute");
  return static_cast<std::size_t>(v);
}
}  // namespace

PoolInfo pool_info() {
  DeviceGuard guard;
  PoolInfo i;
  i.reserved = pool_attr(g_pool, cudaMemPoolAttrReservedMemCurrent);
  i.used = pool_attr(g_pool, cudaMemPoolAttrUsedMemCurrent);
  i.reserved_high = pool_attr(g_pool, cudaMemPoolAttrReservedMemHigh);
  i.used_high = pool_attr(g_pool, cudaMemPoolAttrUsedMemHigh);
  return i;
}
std::size_t pool_reserved() { return pool_info().reserved; }
std::size_t pool_used() { return pool_info().used; }

std::size_t empty_cache() {
  if (!g_initialized) return 0;
  DeviceGuard guard;
  check(cudaStreamSynchronize(g_stream), "empty_cache (synchronising)");
  const std::size_t before = pool_reserved();
  check(cudaMemPoolTrimTo(g_pool, 0), "cudaMemPoolTrimTo");
  const std::size_t after = pool_reserved();
  return before > after ? before - after : 0;
}

std::size_t default_pool_release_threshold() {
  init();
  DeviceGuard guard;
  cudaMemPool_t pool = nullptr;
  check(cudaDeviceGetDefaultMemPool(&pool, kDevice), "cudaDeviceGetDefaultMemPool");
  return pool_attr(pool, cudaMemPoolAttrReleaseThreshold);
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
