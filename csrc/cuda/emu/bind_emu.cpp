// bind_emu.cpp: the emulator build's test hooks on lamina._cuda_emu (the emulator's own
// streams, a kernel queued on any stream, the calling thread's current device), used by the
// tests of stream ordering, interchange and device selection, which need a second party.
#include <pybind11/pybind11.h>

#include <cstdint>

#include "../launch.cuh"

namespace py = pybind11;

namespace lamina::cuda::bind {
namespace {

__global__ void emu_fill_kernel(float* p, index_t n, float value) {
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<index_t>(blockDim.x) * gridDim.x)
    p[i] = value;
}

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
  m.def("emu_set_device", [](int d) { ok(cudaSetDevice(d), "cudaSetDevice"); },
        "Makes device d current for the calling OS thread.");
  m.def("emu_get_device", []() {
    int d = -1;
    ok(cudaGetDevice(&d), "cudaGetDevice");
    return d;
  });
  m.def("emu_pending", [](std::uintptr_t s) {
    return cudaStreamQuery(reinterpret_cast<cudaStream_t>(s)) == cudaErrorNotReady;
  }, "Whether work queued on stream s has not run yet.");
}

}  // namespace lamina::cuda::bind
