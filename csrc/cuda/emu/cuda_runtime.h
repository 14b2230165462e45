// cuda_runtime.h of the CUDA emulator: the part of the CUDA runtime API and of the device
// language that lamina's CUDA sources use, implemented on the CPU (csrc/cuda/emu/emu.cpp), so
// that g++ compiles the very .cu files nvcc compiles and runs them as a GPU would: grids of
// blocks, each block's threads as cooperative fibers, per-block __shared__ memory,
// __syncthreads() and warp operations as checked rendezvous, stream-ordered work, a memory pool,
// events. Only the LAMINA_CUDA_EMU build (csrc/cuda/emu/CMakeLists.txt) puts this folder on the
// include path; nvcc builds never see it.
//
// What it checks, beyond running the code (each failure names the kernel):
//   - launch limits of sm_90: threads per block <= 1024 (x, y <= 1024, z <= 64), grid x <= 2^31-1,
//     grid y and z <= 65,535, dynamic shared memory <= 48 KiB unless cudaFuncSetAttribute opted in
//     (static __shared__ arrays over 48 KiB are ptxas errors in the nvcc build);
//   - a __syncthreads() not reached by every live thread of the block, or reached at different
//     call sites (divergence); a warp operation whose mask names a lane that does not take part;
//   - device memory is filled with a NaN pattern (0x7FF7A5A5 per 32-bit word) when allocated and
//     another (0x7FF7DEAD) when a free executes in stream order; copies check their ranges;
//   - work queued on a stream runs only when something waits for it (a synchronisation, an event
//     wait, a synchronous copy), so a missing cross-stream dependency reads poison;
//   - the order of the threads of a block is shuffled on every pass between rendezvous (seeded by
//     LAMINA_CUDA_EMU_SEED, reproducible), so a missing barrier changes results.
//
// Environment: LAMINA_CUDA_EMU_DEVICES (emulated devices, default 1), LAMINA_CUDA_EMU_SMS
// (multiprocessors reported, default 132 as an H100 SXM), LAMINA_CUDA_EMU_MEMORY (bytes of device
// memory, default 4 GiB), LAMINA_CUDA_EMU_SEED.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

#define LAMINA_CUDA_EMU_RUNTIME 1
#define CUDART_VERSION 13000

// ---- the language's qualifiers -----------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict
// One copy per OS thread; a block runs start to end on one OS thread, so this is the block's.
#define __shared__ static thread_local
#define __constant__

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};

// ---- runtime types ------------------------------------------------------------------------
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInitializationError = 3,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorInsufficientDriver = 35,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorNotReady = 600,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchOutOfResources = 701,
  cudaErrorAssert = 710,
  cudaErrorIllegalInstruction = 715,
  cudaErrorLaunchFailure = 719,
  cudaErrorNotSupported = 801,
  cudaErrorUnknown = 999
};
using cudaError = cudaError_t;

struct CUstream_st;
struct CUevent_st;
struct CUmemPoolHandle_st;
using cudaStream_t = CUstream_st*;
using cudaEvent_t = CUevent_st*;
using cudaMemPool_t = CUmemPoolHandle_st*;
#define cudaStreamLegacy ((cudaStream_t)0x1)
#define cudaStreamPerThread ((cudaStream_t)0x2)

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4
};
constexpr unsigned cudaStreamDefault = 0, cudaStreamNonBlocking = 1;
constexpr unsigned cudaEventDefault = 0, cudaEventBlockingSync = 1, cudaEventDisableTiming = 2;
constexpr unsigned cudaHostAllocDefault = 0;

enum cudaMemPoolAttr {
  cudaMemPoolReuseFollowEventDependencies = 1,
  cudaMemPoolReuseAllowOpportunistic = 2,
  cudaMemPoolReuseAllowInternalDependencies = 3,
  cudaMemPoolAttrReleaseThreshold = 4,
  cudaMemPoolAttrReservedMemCurrent = 5,
  cudaMemPoolAttrReservedMemHigh = 6,
  cudaMemPoolAttrUsedMemCurrent = 7,
  cudaMemPoolAttrUsedMemHigh = 8
};
enum cudaMemAllocationType { cudaMemAllocationTypeInvalid = 0, cudaMemAllocationTypePinned = 1 };
enum cudaMemAllocationHandleType { cudaMemHandleTypeNone = 0 };
enum cudaMemLocationType { cudaMemLocationTypeInvalid = 0, cudaMemLocationTypeDevice = 1 };
struct cudaMemLocation {
  cudaMemLocationType type;
  int id;
};
struct cudaMemPoolProps {
  cudaMemAllocationType allocType;
  cudaMemAllocationHandleType handleTypes;
  cudaMemLocation location;
  void* win32SecurityAttributes;
  std::size_t maxSize;
  unsigned short usage;
  unsigned char reserved[54];
};

enum cudaDeviceAttr {
  cudaDevAttrMaxThreadsPerBlock = 1,
  cudaDevAttrMaxBlockDimX = 2,
  cudaDevAttrMaxBlockDimY = 3,
  cudaDevAttrMaxBlockDimZ = 4,
  cudaDevAttrMaxGridDimX = 5,
  cudaDevAttrMaxGridDimY = 6,
  cudaDevAttrMaxGridDimZ = 7,
  cudaDevAttrMaxSharedMemoryPerBlock = 8,
  cudaDevAttrWarpSize = 10,
  cudaDevAttrMultiProcessorCount = 16,
  cudaDevAttrComputeCapabilityMajor = 75,
  cudaDevAttrComputeCapabilityMinor = 76,
  cudaDevAttrMaxSharedMemoryPerBlockOptin = 97
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };

enum cudaMemoryType { cudaMemoryTypeUnregistered = 0, cudaMemoryTypeHost = 1, cudaMemoryTypeDevice = 2 };
struct cudaPointerAttributes {
  cudaMemoryType type;
  int device;
  void* devicePointer;
  void* hostPointer;
};

struct cudaDeviceProp {
  char name[256];
  std::size_t totalGlobalMem;
  std::size_t sharedMemPerBlock;
  std::size_t sharedMemPerBlockOptin;
  int warpSize;
  int maxThreadsPerBlock;
  int maxThreadsDim[3];
  int maxGridSize[3];
  int major, minor;
  int multiProcessorCount;
};

// ---- runtime API (emu.cpp) ------------------------------------------------------------------
cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaGetDevice(int* d);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d);
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr attr, int d);
cudaError_t cudaRuntimeGetVersion(int* v);
cudaError_t cudaDriverGetVersion(int* v);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorName(cudaError_t e);
const char* cudaGetErrorString(cudaError_t e);

cudaError_t cudaStreamCreate(cudaStream_t* s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamQuery(cudaStream_t s);
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags = 0);

cudaError_t cudaEventCreate(cudaEvent_t* e);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventQuery(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);

cudaError_t cudaMalloc(void** p, std::size_t n);
cudaError_t cudaFree(void* p);
cudaError_t cudaMallocAsync(void** p, std::size_t n, cudaStream_t s);
cudaError_t cudaFreeAsync(void* p, cudaStream_t s);
cudaError_t cudaMallocFromPoolAsync(void** p, std::size_t n, cudaMemPool_t pool, cudaStream_t s);
cudaError_t cudaMallocHost(void** p, std::size_t n);
cudaError_t cudaFreeHost(void* p);
cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* a, const void* p);
cudaError_t cudaMemGetInfo(std::size_t* free_bytes, std::size_t* total_bytes);

cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int d);
cudaError_t cudaMemPoolCreate(cudaMemPool_t* pool, const cudaMemPoolProps* props);
cudaError_t cudaMemPoolDestroy(cudaMemPool_t pool);
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attr, void* value);
cudaError_t cudaMemPoolGetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attr, void* value);
cudaError_t cudaMemPoolTrimTo(cudaMemPool_t pool, std::size_t keep);

cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t n, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t n, cudaMemcpyKind kind, cudaStream_t s = nullptr);
cudaError_t cudaMemset(void* dst, int value, std::size_t n);
cudaError_t cudaMemsetAsync(void* dst, int value, std::size_t n, cudaStream_t s = nullptr);

// The typed overloads cuda_runtime.h has.
template <class T>
cudaError_t cudaMalloc(T** p, std::size_t n) { return cudaMalloc(reinterpret_cast<void**>(p), n); }
template <class T>
cudaError_t cudaMallocHost(T** p, std::size_t n) { return cudaMallocHost(reinterpret_cast<void**>(p), n); }
template <class T>
cudaError_t cudaMallocAsync(T** p, std::size_t n, cudaStream_t s) {
  return cudaMallocAsync(reinterpret_cast<void**>(p), n, s);
}
template <class T>
cudaError_t cudaMallocFromPoolAsync(T** p, std::size_t n, cudaMemPool_t pool, cudaStream_t s) {
  return cudaMallocFromPoolAsync(reinterpret_cast<void**>(p), n, pool, s);
}

cudaError_t cudaFuncSetAttributeRaw(const void* fn, cudaFuncAttribute attr, int value);
template <class F>
cudaError_t cudaFuncSetAttribute(F* fn, cudaFuncAttribute attr, int value) {
  return cudaFuncSetAttributeRaw(reinterpret_cast<const void*>(fn), attr, value);
}

// ---- the device side: built-in variables, barriers, warp operations, atomics ------------------
namespace lamina_emu {

struct ThreadState;  // a fiber: one CUDA thread of the block being run (emu.cpp)
struct BlockState {
  uint3 block_idx;
  dim3 block_dim, grid_dim;
};
extern thread_local ThreadState* t_thread;
extern thread_local BlockState t_block;
const uint3& thread_idx();

enum WarpOp : int { kShflIdx, kShflUp, kShflDown, kShflXor, kBallot, kAny, kAll, kSyncWarp };
// Every lane named in `mask` meets here (checked); returns the lane's result bits.
std::uint64_t warp_op(WarpOp op, unsigned mask, std::uint64_t value, int arg, int width, const char* site);
void syncthreads(const char* site);
std::size_t live_events();  // events created and not destroyed (tests of event lifetimes)
[[noreturn]] void trap(const char* what);

template <class T>
std::uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "warp shuffles move up to 8 bytes");
  std::uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <class T>
T from_bits(std::uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}

// ---- launches -------------------------------------------------------------------------------
struct LaunchConfig {
  const char* name;
  dim3 grid, block;
  std::size_t shmem;
  cudaStream_t stream;
  const void* fn;
};
// Checks the configuration, queues the launch on its stream; the error is also the thread's
// last error (cudaGetLastError), as a failed launch is on a GPU.
cudaError_t launch(const LaunchConfig& c, std::function<void()> thread_body);

template <class... P>
struct Launcher {
  LaunchConfig c;
  void (*fn)(P...);
  template <class... A>
  void operator()(A&&... a) const {
    static_assert(sizeof...(A) == sizeof...(P), "kernel argument count");
    // Arguments are copied at launch, as the GPU copies them into constant memory.
    std::tuple<std::decay_t<P>...> args(static_cast<std::decay_t<P>>(std::forward<A>(a))...);
    auto f = fn;
    launch(c, [f, args]() { std::apply(f, args); });
  }
};
template <class... P>
Launcher<P...> launcher(const char* name, dim3 grid, dim3 block, std::size_t shmem, cudaStream_t stream,
                        void (*fn)(P...)) {
  return Launcher<P...>{LaunchConfig{name, grid, block, shmem, stream, reinterpret_cast<const void*>(fn)}, fn};
}

}  // namespace lamina_emu

#define threadIdx (::lamina_emu::thread_idx())
#define blockIdx (::lamina_emu::t_block.block_idx)
#define blockDim (::lamina_emu::t_block.block_dim)
#define gridDim (::lamina_emu::t_block.grid_dim)
constexpr int warpSize = 32;

#define LAMINA_EMU_STR2(x) #x
#define LAMINA_EMU_STR(x) LAMINA_EMU_STR2(x)
#define LAMINA_EMU_SITE __FILE__ ":" LAMINA_EMU_STR(__LINE__)
#define __syncthreads() ::lamina_emu::syncthreads(LAMINA_EMU_SITE)
#define __syncwarp(...) ::lamina_emu::syncwarp_at(LAMINA_EMU_SITE, ##__VA_ARGS__)
#define __shfl_sync(mask, v, lane, ...) ::lamina_emu::shfl_at(LAMINA_EMU_SITE, ::lamina_emu::kShflIdx, mask, v, lane, ##__VA_ARGS__)
#define __shfl_up_sync(mask, v, d, ...) ::lamina_emu::shfl_at(LAMINA_EMU_SITE, ::lamina_emu::kShflUp, mask, v, d, ##__VA_ARGS__)
#define __shfl_down_sync(mask, v, d, ...) ::lamina_emu::shfl_at(LAMINA_EMU_SITE, ::lamina_emu::kShflDown, mask, v, d, ##__VA_ARGS__)
#define __shfl_xor_sync(mask, v, m, ...) ::lamina_emu::shfl_at(LAMINA_EMU_SITE, ::lamina_emu::kShflXor, mask, v, m, ##__VA_ARGS__)
#define __ballot_sync(mask, p) static_cast<unsigned>(::lamina_emu::warp_op(::lamina_emu::kBallot, mask, (p) ? 1 : 0, 0, 32, LAMINA_EMU_SITE))
#define __any_sync(mask, p) static_cast<int>(::lamina_emu::warp_op(::lamina_emu::kAny, mask, (p) ? 1 : 0, 0, 32, LAMINA_EMU_SITE))
#define __all_sync(mask, p) static_cast<int>(::lamina_emu::warp_op(::lamina_emu::kAll, mask, (p) ? 1 : 0, 0, 32, LAMINA_EMU_SITE))
#define __trap() ::lamina_emu::trap("__trap()")

namespace lamina_emu {
template <class T>
T shfl_at(const char* site, WarpOp op, unsigned mask, T v, int arg, int width = 32) {
  return from_bits<T>(warp_op(op, mask, to_bits(v), arg, width, site));
}
inline void syncwarp_at(const char* site, unsigned mask = 0xffffffffu) { warp_op(kSyncWarp, mask, 0, 0, 32, site); }
}  // namespace lamina_emu

inline unsigned __activemask() { return 0xffffffffu; }
inline void __threadfence() {}
inline void __threadfence_block() {}
template <class T>
inline T __ldg(const T* p) { return *p; }

// Atomics: the blocks of a launch run one after another on one OS thread (and all device work is
// serialised), so a read-modify-write is atomic with respect to every other CUDA thread.
template <class T>
inline T atomicAdd(T* p, T v) { const T old = *p; *p = old + v; return old; }
template <class T>
inline T atomicSub(T* p, T v) { const T old = *p; *p = old - v; return old; }
template <class T>
inline T atomicMin(T* p, T v) { const T old = *p; if (v < old) *p = v; return old; }
template <class T>
inline T atomicMax(T* p, T v) { const T old = *p; if (v > old) *p = v; return old; }
template <class T>
inline T atomicExch(T* p, T v) { const T old = *p; *p = v; return old; }
template <class T>
inline T atomicCAS(T* p, T cmp, T v) { const T old = *p; if (old == cmp) *p = v; return old; }

inline float __int_as_float(int v) { float f; std::memcpy(&f, &v, 4); return f; }
inline int __float_as_int(float f) { int v; std::memcpy(&v, &f, 4); return v; }
