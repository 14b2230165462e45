// bind_emu.cpp: the emulator build's test hooks on lamina._cuda_emu (the emulator's own
// streams, a kernel queued on any stream, the calling thread's current device), used by the
// tests of stream ordering, interchange and device selection, which need a second party.
#include <pybind11/pybind11.h>

#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../launch.cuh"

namespace py = pybind11;

namespace lamina::cuda::bind {
namespace {

__global__ void emu_fill_kernel(float* p, index_t n, float value) {
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<index_t>(blockDim.x) * gridDim.x)
    p[i] = value;
}

// Kernels that break the execution model's rules, one per check of the emulator (emu_selftest).
__global__ void selftest_divergent_barrier(float* out) {
  if (threadIdx.x < 32) __syncthreads();
  else __syncthreads();
  out[threadIdx.x] = 1.0f;
}
__global__ void selftest_barrier_after_exit(float* out) {
  if (threadIdx.x >= 32) return;  // exited threads do not hold the barrier up
  __syncthreads();
  out[threadIdx.x] = 1.0f;
}
__global__ void selftest_shfl_exited_lane(float* out) {
  if (threadIdx.x == 5) return;
  out[threadIdx.x] = __shfl_down_sync(0xffffffffu, static_cast<float>(threadIdx.x), 1);
}
__global__ void selftest_shfl_lane_at_barrier(float* out) {
  if (threadIdx.x < 16) out[threadIdx.x] = __shfl_down_sync(0xffffffffu, 1.0f, 1);
  else __syncthreads();
}
__global__ void selftest_shfl_half_warp(float* out) {  // lanes 0-15 only, with their own mask
  if (threadIdx.x < 16) out[threadIdx.x] = __shfl_xor_sync(0x0000ffffu, static_cast<float>(threadIdx.x), 1, 16);
}
__global__ void selftest_warp_votes(float* out) {
  const bool odd = threadIdx.x & 1;
  out[threadIdx.x] = static_cast<float>(__ballot_sync(0xffffffffu, odd) == 0xAAAAAAAAu) +
                     2.0f * static_cast<float>(__any_sync(0xffffffffu, threadIdx.x == 31)) +
                     4.0f * static_cast<float>(__all_sync(0xffffffffu, odd));
}
// out[i] = in-block sum of the values of threads i and i + 1 through shared memory; `barrier`
// says whether the write and the read are separated by __syncthreads().
template <bool barrier>
__global__ void selftest_shared_neighbour(float* out) {
  __shared__ float s[256];
  s[threadIdx.x] = static_cast<float>(threadIdx.x + 1 + 1000 * blockIdx.x);
  if (barrier) __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = s[threadIdx.x] + s[(threadIdx.x + 1) % blockDim.x];
  if (barrier) __syncthreads();
  s[threadIdx.x] = -1.0f;  // what the next block finds if it reads too early
}
__global__ void selftest_trap(float*) {
  if (threadIdx.x == 7) __trap();
}
__global__ void selftest_plain(float* out) { out[threadIdx.x] = static_cast<float>(threadIdx.x); }

void ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(std::string("lamina CUDA emulator: ") + what + " failed (" + cudaGetErrorString(e) + ")");
}

}  // namespace

void bind_emu(py::module_& m) {
  m.attr("emulated") = true;
  m.def("emu_stream_create", [](bool nonblocking) {
    cudaStream_t s = nullptr;
    ok(cudaStreamCreateWithFlags(&s, nonblocking ? cudaStreamNonBlocking : cudaStreamDefault), "cudaStreamCreate");
    return reinterpret_cast<std::uintptr_t>(s);
  }, py::arg("nonblocking") = true, "A new stream of the current device (an int handle; 0 is the legacy stream).");
  m.def("emu_stream_destroy", [](std::uintptr_t s) {
    ok(cudaStreamDestroy(reinterpret_cast<cudaStream_t>(s)), "cudaStreamDestroy");
  });
  m.def("emu_stream_synchronize", [](std::uintptr_t s) {
    py::gil_scoped_release nogil;
    ok(cudaStreamSynchronize(reinterpret_cast<cudaStream_t>(s)), "cudaStreamSynchronize");
  });
  m.def("emu_fill_async", [](std::uintptr_t ptr, index_t n, float value, std::uintptr_t stream) {
    if (n <= 0) return;
    const unsigned blocks = static_cast<unsigned>(std::min<index_t>((n + 255) / 256, 1024));
    LAMINA_LAUNCH("emu_fill", blocks, 256, 0, reinterpret_cast<cudaStream_t>(stream), emu_fill_kernel)(
        reinterpret_cast<float*>(ptr), n, value);
    check_launch("emu_fill");
  }, py::arg("ptr"), py::arg("n"), py::arg("value"), py::arg("stream"),
     "Queues a kernel writing n float32 `value`s at device address ptr on `stream`.");
  m.def("emu_copy_async", [](std::uintptr_t dst, std::uintptr_t src, std::size_t nbytes, std::uintptr_t stream) {
    check(cudaMemcpyAsync(reinterpret_cast<void*>(dst), reinterpret_cast<const void*>(src), nbytes,
                          cudaMemcpyDeviceToDevice, reinterpret_cast<cudaStream_t>(stream)), "emu_copy_async");
  }, py::arg("dst"), py::arg("src"), py::arg("nbytes"), py::arg("stream"),
     "Queues a device-to-device copy on `stream` (a second party's reader or writer).");
  m.def("emu_set_device", [](int d) { ok(cudaSetDevice(d), "cudaSetDevice"); },
        "Makes device d current for the calling OS thread.");
  m.def("emu_get_device", []() {
    int d = -1;
    ok(cudaGetDevice(&d), "cudaGetDevice");
    return d;
  });
  // Runs one of the rule-breaking kernels above on lamina's stream, synchronises (the emulator's
  // report, naming the kernel, surfaces as CudaError), returns what it wrote.
  m.def("emu_selftest", [](const std::string& which) {
    init();
    const index_t n = 4 * 256;
    TempBuffer buf(sizeof(float) * n);
    float* out = buf.f();
    auto st = static_cast<cudaStream_t>(stream());
    dim3 grid(1), block(64);
    const char* name = which.c_str();
    if (which == "divergent_barrier") LAMINA_LAUNCH(name, grid, block, 0, st, selftest_divergent_barrier)(out);
    else if (which == "barrier_after_exit") LAMINA_LAUNCH(name, grid, block, 0, st, selftest_barrier_after_exit)(out);
    else if (which == "shfl_exited_lane") LAMINA_LAUNCH(name, grid, 32, 0, st, selftest_shfl_exited_lane)(out);
    else if (which == "shfl_lane_at_barrier") LAMINA_LAUNCH(name, grid, 32, 0, st, selftest_shfl_lane_at_barrier)(out);
    else if (which == "shfl_half_warp") LAMINA_LAUNCH(name, grid, 32, 0, st, selftest_shfl_half_warp)(out);
    else if (which == "warp_votes") LAMINA_LAUNCH(name, grid, 32, 0, st, selftest_warp_votes)(out);
    else if (which == "shared_with_barrier") LAMINA_LAUNCH(name, 4, 256, 0, st, selftest_shared_neighbour<true>)(out);
    else if (which == "shared_without_barrier") LAMINA_LAUNCH(name, 4, 256, 0, st, selftest_shared_neighbour<false>)(out);
    else if (which == "trap") LAMINA_LAUNCH(name, grid, 32, 0, st, selftest_trap)(out);
    else if (which == "grid_y_65536") LAMINA_LAUNCH(name, dim3(1, 65536), 32, 0, st, selftest_plain)(out);
    else if (which == "grid_z_65536") LAMINA_LAUNCH(name, dim3(1, 1, 65536), 32, 0, st, selftest_plain)(out);
    else if (which == "block_1025") LAMINA_LAUNCH(name, grid, 1025, 0, st, selftest_plain)(out);
    else if (which == "block_z_65") LAMINA_LAUNCH(name, grid, dim3(1, 1, 65), 0, st, selftest_plain)(out);
    else if (which == "dynamic_shared_64k") LAMINA_LAUNCH(name, grid, 32, 64 * 1024, st, selftest_plain)(out);
    else if (which == "dynamic_shared_64k_opted_in") {
      ok(cudaFuncSetAttribute(selftest_plain, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024), "opt-in");
      LAMINA_LAUNCH(name, grid, 32, 64 * 1024, st, selftest_plain)(out);
      ok(cudaFuncSetAttribute(selftest_plain, cudaFuncAttributeMaxDynamicSharedMemorySize, 48 * 1024), "opt-out");
    } else throw py::value_error("emu_selftest: unknown case " + which);
    check_launch(name);
    std::vector<float> host(n);
    memcpy_d2h(host.data(), out, sizeof(float) * n);
    return host;
  }, py::arg("case"));
  m.def("emu_live_events", []() { return ::lamina_emu::live_events(); },
        "Events created and not yet destroyed.");
  m.def("emu_pending", [](std::uintptr_t s) {
    return cudaStreamQuery(reinterpret_cast<cudaStream_t>(s)) == cudaErrorNotReady;
  }, "Whether work queued on stream s has not run yet.");
}

}  // namespace lamina::cuda::bind
