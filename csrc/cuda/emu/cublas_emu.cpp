// cublas_emu.cpp: a stand-in libcublas for the CUDA emulator: cublasCreate_v2, cublasDestroy_v2,
// cublasSetStream_v2, cublasGetStream_v2, cublasSetMathMode, cublasGetMathMode and cublasSgemm_v2
// with cuBLAS's own signatures and column-major semantics, built as a library of its own that
// lamina loads by dlopen exactly as it loads libcublas.so.13. So the emulator build runs lamina's
// cuBLAS path, the row-major to column-major operand swap included, against a plain SGEMM.
// The product runs in stream order on the stream the handle is bound to (the emulated runtime's
// entry points are read from the stream object). With CUBLAS_TF32_TENSOR_OP_MATH the operands are
// rounded to TF32 (10 mantissa bits), as tensor cores read them.
// LAMINA_CUBLAS_EMU_FAIL=create|sgemm makes cublasCreate_v2 / cublasSgemm_v2 fail with
// CUBLAS_STATUS_ALLOC_FAILED (3), to test how lamina handles it.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "emu_api.h"

namespace {

constexpr int kSuccess = 0, kNotInitialized = 1, kAllocFailed = 3, kInvalidValue = 7, kExecutionFailed = 13;
constexpr int kOpN = 0, kOpT = 1, kOpC = 2;
constexpr int kTf32TensorOpMath = 3;

struct Handle {
  cudaStream_t stream = nullptr;
  int math = 0;
};

bool fail_on(const char* what) {
  const char* f = std::getenv("LAMINA_CUBLAS_EMU_FAIL");
  return f && std::strcmp(f, what) == 0;
}

float tf32(float v) {  // round to nearest even on the 13 dropped mantissa bits
  if (!std::isfinite(v)) return v;
  unsigned u;
  std::memcpy(&u, &v, 4);
  u += 0xFFFu + ((u >> 13) & 1u);
  u &= ~0x1FFFu;
  std::memcpy(&v, &u, 4);
  return v;
}

const lamina_emu::RuntimeApi* api_of(cudaStream_t s) {
  if (!s) return nullptr;
  auto* api = *reinterpret_cast<const lamina_emu::RuntimeApi* const*>(s);
  return api && api->version == lamina_emu::kRuntimeApiVersion ? api : nullptr;
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int cublasCreate_v2(void** handle) {
  if (!handle) return kInvalidValue;
  if (fail_on("create")) return kAllocFailed;
  *handle = new Handle;
  return kSuccess;
}
__attribute__((visibility("default"))) int cublasDestroy_v2(void* handle) {
  if (!handle) return kNotInitialized;
  delete static_cast<Handle*>(handle);
  return kSuccess;
}
__attribute__((visibility("default"))) int cublasSetStream_v2(void* handle, cudaStream_t s) {
  if (!handle) return kNotInitialized;
  static_cast<Handle*>(handle)->stream = s;
  return kSuccess;
}
__attribute__((visibility("default"))) int cublasGetStream_v2(void* handle, cudaStream_t* s) {
  if (!handle || !s) return kNotInitialized;
  *s = static_cast<Handle*>(handle)->stream;
  return kSuccess;
}
__attribute__((visibility("default"))) int cublasSetMathMode(void* handle, int mode) {
  if (!handle) return kNotInitialized;
  static_cast<Handle*>(handle)->math = mode;
  return kSuccess;
}
__attribute__((visibility("default"))) int cublasGetMathMode(void* handle, int* mode) {
  if (!handle || !mode) return kNotInitialized;
  *mode = static_cast<Handle*>(handle)->math;
  return kSuccess;
}

// Column-major C (m, n) = alpha op(A) op(B) + beta C; op(A) (m, k), op(B) (k, n).
__attribute__((visibility("default"))) int cublasSgemm_v2(void* handle, int transa, int transb, int m, int n, int k,
                                                          const float* alpha, const float* A, int lda, const float* B,
                                                          int ldb, const float* beta, float* C, int ldc) {
  if (!handle) return kNotInitialized;
  const Handle h = *static_cast<Handle*>(handle);
  const auto* api = api_of(h.stream);
  if (!api) return kNotInitialized;  // lamina always binds its stream
  if (transa < kOpN || transa > kOpC || transb < kOpN || transb > kOpC || m < 0 || n < 0 || k < 0 || !alpha || !beta)
    return kInvalidValue;
  const bool ta = transa != kOpN, tb = transb != kOpN;
  if (lda < std::max(1, ta ? k : m) || ldb < std::max(1, tb ? n : k) || ldc < std::max(1, m)) return kInvalidValue;
  if (m == 0 || n == 0) return kSuccess;
  if (fail_on("sgemm")) return kAllocFailed;
  // Every operand must be device memory: on a GPU a host pointer faults.
  auto extent = [](int rows, int cols, int ld) { return (static_cast<std::size_t>(cols - 1) * ld + rows) * sizeof(float); };
  if (k > 0 && (!api->is_device_range(A, extent(ta ? k : m, ta ? m : k, lda)) ||
                !api->is_device_range(B, extent(tb ? n : k, tb ? k : n, ldb))))
    return kExecutionFailed;
  if (!api->is_device_range(C, extent(m, n, ldc))) return kExecutionFailed;
  const float al = *alpha, be = *beta;
  const bool round = h.math == kTf32TensorOpMath;
  api->enqueue(h.stream, "cublasSgemm_v2 (stand-in)", [=]() {
    auto a = [&](int i, int l) { const float v = ta ? A[i * static_cast<long>(lda) + l] : A[l * static_cast<long>(lda) + i]; return round ? tf32(v) : v; };
    auto b = [&](int l, int j) { const float v = tb ? B[l * static_cast<long>(ldb) + j] : B[j * static_cast<long>(ldb) + l]; return round ? tf32(v) : v; };
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < m; ++i) {
        float acc = 0.0f;
        for (int l = 0; l < k; ++l) acc += a(i, l) * b(l, j);
        float& c = C[j * static_cast<long>(ldc) + i];
        c = be == 0.0f ? al * acc : al * acc + be * c;  // beta = 0: C is not read (it may hold NaN)
      }
  });
  return kSuccess;
}

}  // extern "C"
