// module_cuda.cpp: the lamina._cuda extension: the device's status (never aborting without a
// driver or a device), lamina's stream, device buffers from the caching pool, copies, DLPack
// export, cuBLAS loading, and the kernels (bind_cuda_<family>.cpp). No math, no loops over data.
// Pointers cross as Python ints; python/lamina/cuda validates shapes, dtypes and layouts.
#include <cuda_runtime.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "lamina/cuda/common.h"
#include "lamina/cuda/cublas.h"
#include "lamina/cuda/device.h"
#include "lamina/cuda/gemm.h"
#include "lamina/cuda/launch_plan.h"
#include "bind_cuda_array_arg.h"
#include "bind_cuda_common.h"

namespace py = pybind11;
using lamina::cuda::index_t;

#if defined(LAMINA_CUDA_EMU)
namespace lamina::cuda::bind {
void bind_emu(py::module_& m);  // csrc/cuda/emu/bind_emu.cpp
}  // namespace lamina::cuda::bind
#endif

// lamina._cuda, or lamina._cuda_emu: the same bindings over the CUDA emulator (csrc/cuda/emu).
#ifndef LAMINA_CUDA_MODULE_NAME
#define LAMINA_CUDA_MODULE_NAME _cuda
#endif

namespace {

namespace lc = lamina::cuda;

// A device allocation from the pool, freed (stream-ordered) when the last Python reference goes.
struct Buffer {
  void* p = nullptr;
  std::size_t nbytes = 0;
  explicit Buffer(std::size_t n) : p(n ? lc::device_alloc(n) : nullptr), nbytes(n) {}
  ~Buffer() { lc::device_free(p); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

// ---- DLPack (the structs of dlpack.h v0.8, declared here) ----------------------------------
struct DLDevice { int32_t device_type; int32_t device_id; };
struct DLDataType { uint8_t code; uint8_t bits; uint16_t lanes; };
struct DLTensor {
  void* data; DLDevice device; int32_t ndim; DLDataType dtype; int64_t* shape; int64_t* strides;
  uint64_t byte_offset;
};
struct DLManagedTensor {
  DLTensor dl_tensor; void* manager_ctx; void (*deleter)(DLManagedTensor*);
};
constexpr int32_t kDLCUDA = 2;

constexpr std::intptr_t kNoStream = -1;

struct DLContext {
  PyObject* owner;  // the lamina Array, kept alive while the consumer holds the tensor
  std::vector<int64_t> shape, strides;
  std::intptr_t consumer_stream;  // the stream the consumer reads on; kNoStream: no ordering asked
  bool consumed;  // false while only the capsule holds it
};

void release(DLManagedTensor* t) {
  auto* ctx = static_cast<DLContext*>(t->manager_ctx);
  // The consumer is done with the tensor, but its queued kernels may still read it: lamina's
  // stream, on which the owner's memory is freed and reused, waits for the consumer's stream.
  if (ctx->consumed && ctx->consumer_stream != kNoStream)
    lc::lamina_wait_for_release(reinterpret_cast<void*>(ctx->consumer_stream));
  {
    py::gil_scoped_acquire gil;
    Py_XDECREF(ctx->owner);
  }
  delete ctx;
  delete t;
}

void dl_deleter(DLManagedTensor* t) {
  static_cast<DLContext*>(t->manager_ctx)->consumed = true;
  release(t);
}

void capsule_destructor(PyObject* cap) {
  // Only a capsule never consumed (still named "dltensor") is ours to free: nothing read it.
  if (PyCapsule_IsValid(cap, "dltensor")) {
    auto* t = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(cap, "dltensor"));
    if (t) release(t);
  } else {
    PyErr_Clear();
  }
}

py::object to_dlpack(py::object owner, std::uintptr_t ptr, std::vector<int64_t> shape, std::vector<int64_t> strides,
                     int code, int bits, std::intptr_t stream, int device_id) {
  auto* ctx = new DLContext{owner.ptr(), std::move(shape), std::move(strides), stream, false};
  Py_INCREF(ctx->owner);
  auto* t = new DLManagedTensor{};
  t->dl_tensor.data = reinterpret_cast<void*>(ptr);
  t->dl_tensor.device = DLDevice{kDLCUDA, device_id};
  t->dl_tensor.ndim = static_cast<int32_t>(ctx->shape.size());
  t->dl_tensor.dtype = DLDataType{static_cast<uint8_t>(code), static_cast<uint8_t>(bits), 1};
  t->dl_tensor.shape = ctx->shape.data();
  t->dl_tensor.strides = ctx->strides.data();
  t->dl_tensor.byte_offset = 0;
  t->manager_ctx = ctx;
  t->deleter = dl_deleter;
  PyObject* cap = PyCapsule_New(t, "dltensor", capsule_destructor);
  if (!cap) {
    release(t);
    throw py::error_already_set();
  }
  return py::reinterpret_steal<py::object>(cap);
}

py::dict status_dict() {
  lc::Status s = lc::status();
  py::dict d;
  d["count"] = s.count;
  d["error"] = s.error;
  d["reason"] = s.reason;
  d["runtime_version"] = s.runtime_version;
  d["driver_version"] = s.driver_version;
  return d;
}

py::dict device_properties() {
  lc::init();
  cudaDeviceProp p{};
  lc::check(cudaGetDeviceProperties(&p, lc::device_id()), "cudaGetDeviceProperties");
  py::dict d;
  d["name"] = std::string(p.name);
  d["capability"] = py::make_tuple(p.major, p.minor);
  d["multiprocessors"] = p.multiProcessorCount;
  d["memory"] = static_cast<std::size_t>(p.totalGlobalMem);
  return d;
}

py::dict plan_dict(const lc::LaunchPlan& p) {
  py::dict d;
  d["grid"] = py::make_tuple(p.grid[0], p.grid[1], p.grid[2]);
  d["block"] = py::make_tuple(p.block[0], p.block[1], p.block[2]);
  return d;
}

index_t nonnegative(index_t v, const char* name) {
  if (v < 0) throw py::value_error(std::string(name) + " must be >= 0, got " + std::to_string(v));
  return v;
}

void bind_plans(py::module_& m) {
  m.def("each_plan", [](index_t n) { return plan_dict(lc::each_plan(nonnegative(n, "n"))); }, py::arg("n"),
        "The launch of an element-wise kernel over n elements: {grid, block} (no device needed).");
  m.def("reduce_plan", [](index_t n) { return plan_dict(lc::each_plan(nonnegative(n, "n"), lc::kReduceBlocks)); },
        py::arg("n"), "The first launch of a sum over n elements (the partials' blocks).");
  m.def("block_per_row_plan", [](index_t rows) { return plan_dict(lc::block_per_row_plan(nonnegative(rows, "rows"))); },
        py::arg("rows"), "One block per row (conv2d_backward's grad_b).");
  m.def("warp_per_row_plan", [](index_t rows) { return plan_dict(lc::warp_per_row_plan(nonnegative(rows, "rows"))); },
        py::arg("rows"), "One warp per row (softmax, softmax cross-entropy, argmax).");
  m.def("gemm_plan", [](index_t M, index_t N, index_t K, int sms) {
    if (sms < 1) throw py::value_error("sms must be >= 1, got " + std::to_string(sms));
    const lc::GemmPlan p = lc::gemm_plan(nonnegative(M, "M"), nonnegative(N, "N"), nonnegative(K, "K"), sms);
    py::dict d = plan_dict(p.launch);
    d["tile"] = py::make_tuple(p.bm, p.bn);
    d["tiles"] = py::make_tuple(p.tiles_m, p.tiles_n);
    d["splits"] = p.splits;
    d["k_chunk"] = p.k_chunk;
    return d;
  }, py::arg("M"), py::arg("N"), py::arg("K"), py::arg("sms") = 132,
  "The tiled SGEMM's launch for C (M, N) = A (M, K) B (K, N) on a device of `sms` multiprocessors: {grid, "
  "block, tile: (rows, cols), tiles: (along M, along N), splits, k_chunk} (no device needed).");
}

template <class T>
T* host_ptr(py::buffer& b, bool writeable) {
  py::buffer_info info = b.request(writeable);
  return static_cast<T*>(info.ptr);
}

}  // namespace

PYBIND11_MODULE(LAMINA_CUDA_MODULE_NAME, m) {
  m.doc() = "lamina's CUDA backend (kernels in csrc/cuda, bound here); use it through lamina.cuda";
  static py::exception<lc::Error> cuda_error(m, "CudaError", PyExc_RuntimeError);
  // Module-local: lamina._cuda and lamina._cuda_emu both throw lamina::cuda::Error, a type of one name.
  py::register_local_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const lc::OutOfMemory& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    } catch (const lc::Error& e) {
      py::set_error(cuda_error, e.what());
    }
  });
  m.attr("architectures") = LAMINA_CUDA_ARCHITECTURES;
  m.attr("toolkit_version") = LAMINA_CUDA_TOOLKIT_VERSION;
  m.attr("toolkit_library_dir") = LAMINA_CUDA_LIBRARY_DIR;

  m.def("status", &status_dict, "{count, error, reason, runtime_version, driver_version}: never raises");
  m.def("init", &lc::init, "Create lamina's stream and memory pool on lamina's device (the caller's current "
        "device is left as it is).");
  m.def("device_id", &lc::device_id, "lamina's device");
  m.def("current_device", &lc::current_device, "The calling thread's current device (cudaGetDevice).");
  m.def("sync_mode", &lc::sync_mode, "Whether LAMINA_CUDA_SYNC=1 was set at init: every launch synchronised.");
  m.def("properties", &device_properties);
  m.def("stream", []() { return reinterpret_cast<std::uintptr_t>(lc::stream()); }, "lamina's cudaStream_t as an int");
  m.def("synchronize", &lc::synchronize);
  m.def("stream_wait", [](std::uintptr_t other) { lc::stream_wait_for_lamina(reinterpret_cast<void*>(other)); },
        py::arg("stream"), "Makes stream `stream` wait for the work queued on lamina's stream.");
  m.def("lamina_wait", [](std::uintptr_t other) { lc::lamina_wait_for(reinterpret_cast<void*>(other)); },
        py::arg("stream"), "Makes lamina's stream wait for the work queued on stream `stream`.");
  m.def("pool_reserved", &lc::pool_reserved);
  m.def("pool_used", &lc::pool_used);
  m.def("pool_info", []() {
    const lc::PoolInfo i = lc::pool_info();
    py::dict d;
    d["pool_reserved"] = i.reserved;
    d["pool_used"] = i.used;
    d["pool_reserved_peak"] = i.reserved_high;
    d["pool_used_peak"] = i.used_high;
    return d;
  }, "lamina's memory pool, in bytes: reserved from the device and in use, now and at their peaks.");
  m.def("empty_cache", []() {
    py::gil_scoped_release nogil;
    return lc::empty_cache();
  }, "Waits for lamina's stream, then gives the pool's unused memory back to the device; returns the bytes "
     "released.");
  m.def("default_pool_release_threshold", &lc::default_pool_release_threshold,
        "The release threshold of the device's default memory pool (lamina never changes it).");

  py::class_<Buffer>(m, "Buffer")
      .def(py::init<std::size_t>(), py::arg("nbytes"))
      .def_property_readonly("ptr", [](const Buffer& b) { return reinterpret_cast<std::uintptr_t>(b.p); })
      .def_readonly("nbytes", &Buffer::nbytes);

  m.def("h2d", [](std::uintptr_t dst, py::buffer src) {
    py::buffer_info info = src.request();
    lc::memcpy_h2d(reinterpret_cast<void*>(dst), info.ptr, static_cast<std::size_t>(info.size * info.itemsize));
  });
  m.def("d2h", [](py::buffer dst, std::uintptr_t src) {
    py::buffer_info info = dst.request(true);
    py::gil_scoped_release nogil;
    lc::memcpy_d2h(info.ptr, reinterpret_cast<const void*>(src), static_cast<std::size_t>(info.size * info.itemsize));
  });
  m.def("d2d", [](std::uintptr_t dst, std::uintptr_t src, std::size_t n) {
    lc::memcpy_d2d(reinterpret_cast<void*>(dst), reinterpret_cast<const void*>(src), n);
  });
  m.def("to_dlpack", &to_dlpack, py::arg("owner"), py::arg("ptr"), py::arg("shape"), py::arg("strides"),
        py::arg("code"), py::arg("bits"), py::arg("stream") = kNoStream, py::arg("device_id") = 0,
        "A DLPack capsule over [ptr, ...), keeping `owner` alive until the consumer releases it; the release "
        "then makes lamina's stream wait for `stream` (the consumer's; -1: none).");

  m.def("cublas_load", &lc::cublas::load, py::arg("path") = "");
  m.def("cublas_loaded", &lc::cublas::loaded);
  m.def("cublas_path", &lc::cublas::loaded_path);
  m.def("cublas_status", &lc::cublas::status, "\"\" while cuBLAS is usable (or untried), else why lamina's own SGEMM "
        "serves instead (cublasCreate failed, ...).");
  m.def("set_gemm_path", [](int p) { lc::gemm_path() = p; }, "0 auto, 1 ours, 2 cuBLAS");
  m.def("set_force_index64", [](bool v) { lc::force_index64() = v; },
        "Tests: keep every element-wise launch on its 64-bit index path (else 32-bit where sizes allow).");
  m.def("get_gemm_path", []() { return lc::gemm_path(); });
  m.def("set_allow_tf32", [](bool v) { lc::allow_tf32() = v; });

  bind_plans(m);
  namespace lb = lamina::cuda::bind;
  for (auto bind_family : {lb::bind_activation, lb::bind_array, lb::bind_conv, lb::bind_dropout, lb::bind_gemm,
                           lb::bind_loss, lb::bind_norm, lb::bind_pool, lb::bind_rnn_cell, lb::bind_sgd,
                           lb::bind_softmax, lb::bind_upsample})
    bind_family(m);
  lb::bind_array_args(m);
#if defined(LAMINA_CUDA_EMU)
  lamina::cuda::bind::bind_emu(m);
#endif
}
