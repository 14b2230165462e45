// cublas.cpp: cuBLAS through dlopen, with the few declarations we need written here (no
// cuBLAS headers at build time). The handle is bound to lamina's stream.
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

void sgemm(bool ta, bool tb, index_t M, index_t N, index_t K, const float* A, index_t lda, const float* B,
           index_t ldb, float* C, index_t ldc, bool tf32) {
  if (!g_handle) {
    Status s = g_create(&g_handle);
    if (s != 0) {
      g_handle = nullptr;
      throw Error("lamina.cuda: cublasCreate failed (status " + std::to_string(s) + ")");
    }
    if (g_set_stream(g_handle, stream()) != 0) throw Error("lamina.cuda: cublasSetStream failed");
  }
  const int math = tf32 ? kTf32TensorOpMath : kDefaultMath;
  if (math != g_math) {
    if (g_set_math(g_handle, math) != 0) throw Error("lamina.cuda: cublasSetMathMode failed");
    g_math = math;
  }
  const float one = 1.0f, zero = 0.0f;
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
  Status s = g_sgemm(g_handle, tb ? kOpT : kOpN, ta ? kOpT : kOpN, static_cast<int>(N), static_cast<int>(M),
                     static_cast<int>(K), &one, B, static_cast<int>(ldb), A, static_cast<int>(lda), &zero, C,
                     static_cast<int>(ldc));
  if (s != 0) throw Error("lamina.cuda: kernel gemm (cublasSgemm) failed (cuBLAS status " + std::to_string(s) + ")");
  check_launch("gemm (cublasSgemm)");
}

}  // namespace lamina::cuda::cublas
