// cuda/cublas.h: cuBLAS loaded at run time (csrc/cuda/cublas.cpp): dlopen of libcublas.so.13
// (a path from lamina.cuda: the toolkit's lib folder, the nvidia-cublas wheel, or the loader's
// search path), declaring the five functions used ourselves, so the build needs no cuBLAS
// headers or library and lamina works without it (on its own SGEMM).
#pragma once
#include <string>

#include "lamina/cuda/common.h"

namespace lamina::cuda::cublas {

// Loads the library at `path` (or by soname when empty); "" on success, else why not.
std::string load(const std::string& path);
bool loaded();
std::string loaded_path();
// Loaded and its handle created (on first call, under a lock); false when cublasCreate or
// cublasSetStream failed, status() then saying why and lamina's own SGEMM serving.
bool usable();
// "" while cuBLAS is usable (or was never tried), else why it is set aside.
std::string status();
// Row-major C (M, N) = op(A) op(B) with cuBLAS (column-major, through the operand swap);
// TF32 when allow_tf32. Throws Error; OutOfMemory for CUBLAS_STATUS_ALLOC_FAILED.
void sgemm(bool ta, bool tb, index_t M, index_t N, index_t K, const float* A, index_t lda, const float* B,
           index_t ldb, float* C, index_t ldc, bool tf32);

}  // namespace lamina::cuda::cublas
