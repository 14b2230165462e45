// cuda/gemm.h: matmul, linear and the GEMM under them and conv2d: C = op(A) op(B) [+ bias]
// [ReLU], row-major float32 (csrc/cuda/gemm.cu).
//
//   op(A) (M, K): A[m*lda + k], or A[k*lda + m] when ta;  op(B) (K, N): B[k*ldb + n], or
//   B[n*ldb + k] when tb.  bias: per column (bias[n], linear) or per row (bias[m], conv).
//   Stored at C[m*ldc + n], or, with nchw_p = P > 0, at C[(n / P) * M * P + m * P + n % P]: the
//   conv GEMM's (O, N*P) result written straight into y (N, O, P).
// Paths: our tiled SGEMM (64x64 tiles, 4x4 per thread, epilogue fused, split over K when the
// output is too small to fill the device), or cuBLAS (loaded at run time, lamina/cuda/cublas.h)
// for large products, followed by the epilogue as its own pass.
#pragma once
#include "lamina/cuda/common.h"

namespace lamina::cuda {

enum BiasMode : int { kNoBias = 0, kBiasPerColumn = 1, kBiasPerRow = 2 };

struct GemmArgs {
  const float* A;
  const float* B;
  float* C;
  const float* bias;
  index_t M, N, K, lda, ldb, ldc;
  bool ta, tb;
  int bias_mode;
  bool relu;
  index_t nchw_p;  // 0: plain store

  LAMINA_HD float a(index_t m, index_t k) const { return ta ? A[k * lda + m] : A[m * lda + k]; }
  LAMINA_HD float b(index_t k, index_t n) const { return tb ? B[n * ldb + k] : B[k * ldb + n]; }
  LAMINA_HD index_t c_index(index_t m, index_t n) const {
    return nchw_p > 0 ? (n / nchw_p) * M * nchw_p + m * nchw_p + n % nchw_p : m * ldc + n;
  }
  LAMINA_HD float epilogue(index_t m, index_t n, float acc) const {
    if (bias_mode == kBiasPerColumn) acc += bias[n];
    else if (bias_mode == kBiasPerRow) acc += bias[m];
    if (relu) acc = (acc > 0.0f || acc != acc) ? acc : 0.0f;
    return acc;
  }
};

// Which path gemm() takes: 0 auto (cuBLAS when loaded and the product is large), 1 ours, 2 cuBLAS.
int& gemm_path();
bool& allow_tf32();
void gemm(const GemmArgs& g);

// matmul: C (M, N) = op(A) (M, K) @ op(B) (K, N), op a transpose when trans_a / trans_b; A and B
// row-major with leading dimensions lda, ldb; C contiguous.
void matmul(const float* A, index_t lda, bool trans_a, const float* B, index_t ldb, bool trans_b, float* C, index_t M,
            index_t N, index_t K);
// linear: y (n, o) = x (n, k) @ w (o, k)^T [+ b (o,)] [ReLU]; b may be null; y contiguous.
void linear(const float* x, index_t ldx, const float* w, index_t ldw, const float* b, bool relu, float* y, index_t n,
            index_t o, index_t k);

}  // namespace lamina::cuda
