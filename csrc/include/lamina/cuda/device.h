// cuda/device.h: the device, lamina's stream and its memory (csrc/cuda/device.cu).
//
// status() asks the runtime for devices without ever aborting: no driver
// (cudaErrorInsufficientDriver, 35) and no device (cudaErrorNoDevice, 100) both give count 0
// and the reason. init() creates, on lamina's device (device_id(), 0), lamina's stream
// (non-blocking) and a memory pool of lamina's own (cudaMemPoolCreate) that keeps freed memory
// cached (release threshold at the maximum): every allocation is cudaMallocFromPoolAsync on
// that stream, so a training step calls no cudaMalloc once the pool is warm, and the device's
// default pool, which PyTorch and CuPy share, is left as it is. empty_cache() gives the pool's
// unused memory back to the device.
//
// Every function here that touches the device runs under a DeviceGuard: lamina's device is made
// current for the call and the caller's current device restored after, whatever thread calls.
// LAMINA_CUDA_SYNC=1 (read by init) makes check_launch synchronise lamina's stream, so that an
// error is reported by the launch that caused it, naming its kernel.
#pragma once
#include <cstddef>
#include <string>

#include "lamina/cuda/common.h"

namespace lamina::cuda {

// Makes lamina's device current for the scope; restores the caller's current device after.
class DeviceGuard {
 public:
  DeviceGuard();
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;  // -1: nothing to restore
};

struct Status {
  int count = 0;
  int error = 0;        // cudaError_t of cudaGetDeviceCount
  std::string reason;   // empty when a device is usable
  int runtime_version = 0, driver_version = 0;
};
Status status();
void init();  // idempotent; throws Error
bool initialized();
int device_id();  // lamina's device
int current_device();  // the calling thread's current device (cudaGetDevice)
bool sync_mode();  // LAMINA_CUDA_SYNC=1 at init
void* stream();  // cudaStream_t

void* device_alloc(std::size_t nbytes);  // throws OutOfMemory / Error; stream-ordered
// Stream-ordered; never throws (destructors call it): a failure is kept and raised by the next
// check / check_launch.
void device_free(void* p) noexcept;
void memcpy_h2d(void* dst, const void* src, std::size_t n);  // async on the stream (src pinned or pageable)
void memcpy_d2h(void* dst, const void* src, std::size_t n);  // synchronises
void memcpy_d2d(void* dst, const void* src, std::size_t n);
void memset_async(void* dst, int value, std::size_t n);
void synchronize();
// Makes `other` (a cudaStream_t of a consumer, e.g. PyTorch's) wait for the work queued on
// lamina's stream so far.
void stream_wait_for_lamina(void* other);
// Makes lamina's stream wait for the work queued on `other` so far.
void lamina_wait_for(void* other);
// The same where nothing may throw (a DLPack deleter, called by the consumer): lamina's later
// frees and reuses of memory the consumer read wait for its stream; a failure is deferred.
void lamina_wait_for_release(void* other) noexcept;

// The last CUDA error after a launch, as Error naming the kernel (with LAMINA_CUDA_SYNC=1 after
// synchronising lamina's stream, so the kernel's own execution errors are its).
void check_launch(const char* kernel);
// err (a cudaError_t) as Error naming `what`, OutOfMemory for cudaErrorMemoryAllocation. Both
// first raise a failure kept by a release that could not throw (device_free, ~Event).
void check(int err, const char* what);
// Keeps the first failure of a release that must not throw, for the next check to raise.
void defer_error(int err, const char* what) noexcept;

// A CUDA event (timing disabled), destroyed when it leaves scope: destroy() in the normal path
// checks the return code; the destructor (an exception unwinding) keeps it with defer_error.
class Event {
 public:
  Event();
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void* get() const { return e_; }  // cudaEvent_t
  void destroy();

 private:
  void* e_ = nullptr;
};

// Device scratch for reductions: partial sums, one result, one "first bad index" flag.
struct Scratch {
  double* partials;   // kMaxBlocks
  double* result;     // 1
  unsigned long long* bad;  // 1
  double* host_result;      // pinned: result, bad (as two 8-byte words)
};
constexpr int kReduceBlocks = 1024;
Scratch& scratch();

// The scratch reduction's result and the first bad position recorded since reset_bad() (-1:
// none), copied back in one synchronising copy.
double read_result(index_t* bad = nullptr);
void reset_bad();

// lamina's pool: bytes reserved from the device and in use, now and at their highest.
struct PoolInfo {
  std::size_t reserved = 0, used = 0, reserved_high = 0, used_high = 0;
};
PoolInfo pool_info();
std::size_t pool_reserved();
std::size_t pool_used();
// Waits for lamina's stream, then releases the pool's unused memory; returns the bytes released.
std::size_t empty_cache();
// The release threshold of the device's default pool (shared with other libraries; lamina
// never changes it).
std::size_t default_pool_release_threshold();

// A temporary device buffer (RAII, stream-ordered).
struct TempBuffer {
  void* p = nullptr;
  explicit TempBuffer(std::size_t nbytes) : p(nbytes ? device_alloc(nbytes) : nullptr) {}
  ~TempBuffer() { if (p) device_free(p); }
  TempBuffer(const TempBuffer&) = delete;
  TempBuffer& operator=(const TempBuffer&) = delete;
  float* f() const { return static_cast<float*>(p); }
};

// Tests: keeps every element-wise launch on its 64-bit index path (fits_index32 in launch.cuh).
bool& force_index64();

}  // namespace lamina::cuda
