// cuda/device.h: the device, lamina's stream and its memory (csrc/cuda/device.cu).
//
// status() asks the runtime for devices without ever aborting: no driver
// (cudaErrorInsufficientDriver, 35) and no device (cudaErrorNoDevice, 100) both give count 0
// and the reason. init() makes the device current, creates lamina's stream (non-blocking) and
// sets the device's default memory pool to keep freed memory cached (release threshold at the
// maximum): every allocation is cudaMallocAsync on that stream, served from the pool, so a
// training step calls no cudaMalloc once the pool is warm.
#pragma once
#include <cstddef>
#include <string>

#include "lamina/cuda/common.h"

namespace lamina::cuda {

struct Status {
  int count = 0;
  int error = 0;        // cudaError_t of cudaGetDeviceCount
  std::string reason;   // empty when a device is usable
  int runtime_version = 0, driver_version = 0;
};
Status status();
void init();  // idempotent; throws Error
bool initialized();
void* stream();  // cudaStream_t

void* device_alloc(std::size_t nbytes);  // throws OutOfMemory / Error; stream-ordered
void device_free(void* p);               // stream-ordered
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

// The last CUDA error after a launch, as Error naming the kernel.
void check_launch(const char* kernel);
void check(int err, const char* what);

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

// Pool statistics: bytes reserved by the pool and in use.
std::size_t pool_reserved();
std::size_t pool_used();

// A temporary device buffer (RAII, stream-ordered).
struct TempBuffer {
  void* p = nullptr;
  explicit TempBuffer(std::size_t nbytes) : p(nbytes ? device_alloc(nbytes) : nullptr) {}
  ~TempBuffer() { if (p) device_free(p); }
  TempBuffer(const TempBuffer&) = delete;
  TempBuffer& operator=(const TempBuffer&) = delete;
  float* f() const { return static_cast<float*>(p); }
};

}  // namespace lamina::cuda
