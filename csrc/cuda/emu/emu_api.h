// emu_api.h: what the emulated runtime (emu.cpp, inside lamina._cuda_emu) hands to the stand-in
// cuBLAS (cublas_emu.cpp, a library of its own loaded by dlopen as libcublas is): a way to queue
// work on an emulated stream and to check device ranges. lamina's cuBLAS loader passes it on
// through the stand-in's extra entry point lamina_emu_cublas_attach, the one place where the
// emulator build's cuBLAS path differs from a GPU build's.
#pragma once
#include <cstddef>
#include <functional>

#include "cuda_runtime.h"

namespace lamina_emu {

struct RuntimeApi {
  int version;  // kRuntimeApiVersion
  // Queues fn on stream s (nullptr: the legacy default stream) as a kernel named `name`.
  cudaError_t (*enqueue)(cudaStream_t s, const char* name, std::function<void()> fn);
  // Whether [p, p + nbytes) lies inside one live device allocation.
  bool (*is_device_range)(const void* p, std::size_t nbytes);
};
constexpr int kRuntimeApiVersion = 1;
const RuntimeApi* runtime_api();

}  // namespace lamina_emu

extern "C" using lamina_emu_cublas_attach_fn = int (*)(const lamina_emu::RuntimeApi*);
