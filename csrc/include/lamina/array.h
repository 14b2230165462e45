// array.h: the small array operations the model layer needs (fill, strided copy / transpose,
// add, scale, gather_rows, argmax, all_finite, dot), on raw pointers.
//
//   fill:  x[i] = value                                   x flat, n floats
//   copy:  dst[i_0, ..., i_{d-1}] = src[same index]        any element strides (possibly
//                negative or zero for src) on both sides, itemsize 4 or 8 (dtype-agnostic);
//                a transpose is a copy whose src strides are permuted. src and dst must not
//                overlap (callers copy through a temporary).
//   add:   y = a + alpha * b                              flat, n floats; y may be a or b
//   scale: y = alpha * x                                  flat, n floats; y may be x
//   gather_rows: out[i, :] = x[indices[i], :]                   x (rows, row_bytes) contiguous,
//                indices int64 or int32 (m,); returns -1, or the position of the first index
//                outside [0, rows) (then nothing has been written).
//   argmax:      out[o, j] = first k maximising x[o, k, j]       x (outer, K, inner), K >= 1,
//                a NaN counts as the maximum (the first NaN wins, as np.argmax)
//   all_finite:  no NaN / +-inf among n floats (true when n == 0)
//   dot:         sum_i a[i] * b[i], products and sum in double, the same value for any thread
//                count (fixed chunks added in order)
#pragma once
#include <cstdint>

#include "lamina/common.h"

namespace lamina::cpu {
void fill(float* x, index_t n, float value);
void copy(const void* src, void* dst, int itemsize, int ndim, const index_t* shape, const index_t* src_strides, const index_t* dst_strides);
void add(const float* a, const float* b, float* y, index_t n, float alpha);
void scale(const float* x, float* y, index_t n, float alpha);
index_t gather_rows(const void* x, index_t rows, index_t row_bytes, const void* indices, bool indices_i64, index_t m, void* out);
void argmax(const float* x, std::int64_t* out, index_t outer, index_t K, index_t inner);
bool all_finite(const float* x, index_t n);
double dot(const float* a, const float* b, index_t n);
}  // namespace lamina::cpu
