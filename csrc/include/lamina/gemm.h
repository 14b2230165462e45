// gemm.h: single-precision matrix multiplication, the engine of every dense and
// convolution kernel.
//
//   C (M x N) = beta * C + op(A) (M x K) * op(B) (K x N), then + bias, then ReLU
//
// A and B are given by element strides (row stride, column stride), so a transpose is only a
// swap of strides and is absorbed by packing, never by copying the matrix. Strides may be
// any value, negative included. C is row-major with row stride ldc (column stride 1).
// The epilogue is applied once, when the last K block is written back: nothing makes an
// extra pass over C.
#pragma once
#include "lamina/common.h"

namespace lamina {

enum class Bias : int { none = 0, per_row = 1, per_col = 2 };

struct GemmEpilogue {
  float beta = 0.0f;            // 0: C is overwritten and never read (may hold garbage/NaN)
  const float* bias = nullptr;  // length M (per_row) or N (per_col)
  Bias bias_mode = Bias::none;
  bool relu = false;
};

struct MatRef {  // a read-only strided matrix operand
  const float* p;
  index_t rs, cs;
};

}  // namespace lamina

namespace lamina::cpu {
// nthreads: 0 = lamina's thread count (one thread when the problem is too small to split);
// 1 = serial, for callers already inside a parallel region.
void sgemm(index_t M, index_t N, index_t K, MatRef A, MatRef B, float* C, index_t ldc,
           const GemmEpilogue& ep, int nthreads = 0);
}  // namespace lamina::cpu
