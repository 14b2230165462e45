// cuda/array.h: the small array operations of the model layer on the device (csrc/cuda/array.cu),
// with the CPU kernels' arguments (lamina/array.h) where the two agree:
//   fill:        every element of x (any strides) = the value whose bit pattern is `bits`
//   copy:        dst[i...] = src[i...], any element strides on both sides (a transpose is a copy
//                with permuted src strides); src and dst must not overlap
//                (fill and copy: itemsize 4 or 8, dtype-agnostic; at most kMaxDims dimensions)
//   add:         y = a + alpha * b        scale: y = alpha * x      (flat, n floats; y may be an input)
//   gather_rows: out (m, row) = x (rows, row)[indices], itemsize 4 or 8, indices int64 or int32;
//                returns -1, or the position of the first index outside [0, rows) (then nothing
//                has been written)
//   argmax:      out (outer, inner) int64 = the first k maximising x (outer, K, inner), K >= 1; a
//                NaN counts as the maximum (the first NaN wins, as np.argmax)
//   all_finite:  no NaN / +-inf among n floats        dot: sum_i a[i] * b[i], in double
#pragma once
#include <cstdint>

#include "lamina/cuda/common.h"

namespace lamina::cuda {

void fill(void* x, std::uint64_t bits, int itemsize, int ndim, const index_t* shape, const index_t* strides);
void copy(const void* src, void* dst, int itemsize, int ndim, const index_t* shape, const index_t* src_strides,
          const index_t* dst_strides);
void add(const float* a, const float* b, float* y, index_t n, float alpha);
void scale(const float* x, float* y, index_t n, float alpha);
index_t gather_rows(const void* x, index_t rows, index_t row, int itemsize, const void* indices, bool indices_i64,
                    index_t m, void* out);
void argmax(const float* x, std::int64_t* out, index_t outer, index_t K, index_t inner);
bool all_finite(const float* x, index_t n);
double dot(const float* a, const float* b, index_t n);

}  // namespace lamina::cuda
