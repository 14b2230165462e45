// cublas.cpp: cuBLAS through dlopen, with the few declarations we need written here (no
// cuBLAS headers at build time). The handle is created once, under the lock, on lamina's
// device and bound to lamina's stream; if that fails, cuBLAS is set aside (usable() false,
// status() saying why) and gemm() runs lamina's own SGEMM. Calls on the handle (math mode,
// SGEMM) are made under the lock too: the handle's settings are shared state.
#include "lamina/cuda/cublas.h"

#include <dlfcn.h>

#include <mutex>
#include <string>

#include "lamina/cuda/device.h"

namespace lamina::cuda::cublas {
namespace {

using Handle = void*;
using Status = int;  // cublasStatus_t: 0 = CUBLAS_STATUS_SUCCESS
constexpr int kOpN = 0, kOpT = 1;
constexpr int kDefaultMath = 0, kTf32TensorOpMath = 3;

using CreateFn = Status (*)(Handle*);
using SetStreamFn = Status (*)(Handle, void*);
using SetMathModeFn = Status (*)(Handle, int);
using SgemmFn = Status (*)(Handle, int, int, int, int, int, const float*, const float*, int, const float*, int,
                           const float*, float*, int);

std::mutex g_mu;
void* g_lib = nullptr;
std::string g_path;
CreateFn g_create = nullptr;
SetStreamFn g_set_stream = nullptr;
SetMathModeFn g_set_math = nullptr;
SgemmFn g_sgemm = nullptr;
Handle g_handle = nullptr;
int g_math = -1;
std::string g_unusable;  // why cuBLAS is set aside ("" while usable or never tried)

constexpr Status kAllocFailed = 3;  // CUBLAS_STATUS_ALLOC_FAILED

const char* status_name(Status s) {
  switch (s) {
    case 0: return "CUBLAS_STATUS_SUCCESS";
    case 1: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case 3: return "CUBLAS_STATUS_ALLOC_FAILED";
    case 7: return "CUBLAS_STATUS_INVALID_VALUE";
    case 8: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case 11: return "CUBLAS_STATUS_MAPPING_ERROR";
    case 13: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case 14: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case 15: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "unknown cuBLAS status";
  }
}
std::string describe(Status s) { return "status " + std::to_string(s) + ": " + status_name(s); }

// The handle, created on first use; nullptr (g_unusable says why) if that failed. g_mu held.
Handle handle_locked() {
  if (g_handle || !g_unusable.empty() || !g_lib) return g_handle;
  Handle h = nullptr;
  Status s = g_create(&h);
  if (s != 0 || !h) {
    g_unusable = "cublasCreate failed (" + describe(s) + "); lamina's own SGEMM is used";
    return nullptr;
  }
  s = g_set_stream(h, stream());
  if (s != 0) {
    g_unusable = "cublasSetStream failed (" + describe(s) + "); lamina's own SGEMM is used";
    return nullptr;  // the handle is kept out of use, not destroyed: cublasDestroy is not loaded
  }
  g_handle = h;
  return g_handle;
}

}  // namespace

std::string load(const std::string& path) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_lib) return "";
  const std::string name = path.empty() ? "libcublas.so.13" : path;
  void* lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* e = dlerror();
    return std::string("dlopen(") + name + ") failed: " + (e ? e : "?");
  }
  auto sym = [&](const char* s) { return dlsym(lib, s); };
  g_create = reinterpret_cast<CreateFn>(sym("cublasCreate_v2"));
  g_set_stream = reinterpret_cast<SetStreamFn>(sym("cublasSetStream_v2"));
  g_set_math = reinterpret_cast<SetMathModeFn>(sym("cublasSetMathMode"));
  g_sgemm = reinterpret_cast<SgemmFn>(sym("cublasSgemm_v2"));
  if (!g_create || !g_set_stream || !g_set_math || !g_sgemm) {
    dlclose(lib);
    return name + " lacks cublasCreate_v2 / cublasSetStream_v2 / cublasSetMathMode / cublasSgemm_v2";
  }
  g_lib = lib;
  g_path = name;
  return "";
}

bool loaded() { return g_lib != nullptr; }
std::string loaded_path() { return g_path; }

bool usable() {
  if (!g_lib) return false;
  DeviceGuard guard;
  std::lock_guard<std::mutex> lock(g_mu);
  return handle_locked() != nullptr;
}

std::string status() {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_unusable;
}

void sgemm(bool ta, bool tb, index_t M, index_t N, index_t K, const float* A, index_t lda, const float* B,
           index_t ldb, float* C, index_t ldc, bool tf32) {
  DeviceGuard guard;
  std::lock_guard<std::mutex> lock(g_mu);
  Handle h = handle_locked();
  if (!h) throw Error("lamina.cuda: cuBLAS is not usable: " + (g_unusable.empty() ? "not loaded" : g_unusable));
  const int math = tf32 ? kTf32TensorOpMath : kDefaultMath;
  if (math != g_math) {
    const Status s = g_set_math(h, math);
    if (s != 0) throw Error("lamina.cuda: cublasSetMathMode failed (" + describe(s) + ")");
    g_math = math;
  }
  const float one = 1.0f, zero = 0.0f;
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
  const Status s = g_sgemm(h, tb ? kOpT : kOpN, ta ? kOpT : kOpN, static_cast<int>(N), static_cast<int>(M),
                           static_cast<int>(K), &one, B, static_cast<int>(ldb), A, static_cast<int>(lda), &zero, C,
                           static_cast<int>(ldc));
  if (s == kAllocFailed)
    throw OutOfMemory("lamina.cuda: out of device memory in gemm (cublasSgemm: " + describe(s) + ")");
  if (s != 0) throw Error("lamina.cuda: kernel gemm (cublasSgemm) failed (cuBLAS " + describe(s) + ")");
  check_launch("gemm (cublasSgemm)");
}

}  // namespace lamina::cuda::cublas
