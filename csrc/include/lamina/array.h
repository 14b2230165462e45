// array.h: the small array operations the model layer needs (fill, strided copy / transpose,
// add, scale, gather_rows, argmax, all_finite, dot), on raw pointers.
//
//   array_fill:  x[i] = value                                   x flat, n floats
//   array_copy:  dst[i_0, ..., i_{d-1}] = src[same index]        any element strides (possibly
//                negative or zero for src) on both sides, itemsize 4 or 8 (dtype-agnostic);
//                a transpose is a copy whose src strides are permuted. src and dst must not
//                overlap (callers copy through a temporary).
//   array_add:   y = a + alpha * b                              flat, n floats; y may be a or b
//   array_scale: y = alpha * x                                  flat, n floats; y may be x
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
#include "lamina/cpu/isa.h"

LAMINA_DECLARE_ISA_KERNEL(void, array_fill, (float* x, lamina::index_t n, float value))
LAMINA_DECLARE_ISA_KERNEL(void, array_copy,
                          (const void* src, void* dst, int itemsize, int ndim,
                           const lamina::index_t* shape, const lamina::index_t* src_strides,
                           const lamina::index_t* dst_strides))
LAMINA_DECLARE_ISA_KERNEL(void, array_add,
                          (const float* a, const float* b, float* y, lamina::index_t n, float alpha))
LAMINA_DECLARE_ISA_KERNEL(void, array_scale, (const float* x, float* y, lamina::index_t n, float alpha))
LAMINA_DECLARE_ISA_KERNEL(lamina::index_t, gather_rows,
                          (const void* x, lamina::index_t rows, lamina::index_t row_bytes,
                           const void* indices, bool indices_i64, lamina::index_t m, void* out))
LAMINA_DECLARE_ISA_KERNEL(void, argmax,
                          (const float* x, std::int64_t* out, lamina::index_t outer, lamina::index_t K,
                           lamina::index_t inner))
LAMINA_DECLARE_ISA_KERNEL(bool, all_finite, (const float* x, lamina::index_t n))
LAMINA_DECLARE_ISA_KERNEL(double, dot, (const float* a, const float* b, lamina::index_t n))

namespace lamina::cpu {
inline void array_fill(float* x, index_t n, float value) { LAMINA_DISPATCH(array_fill, x, n, value) }
inline void array_copy(const void* src, void* dst, int itemsize, int ndim, const index_t* shape,
                       const index_t* src_strides, const index_t* dst_strides) {
  LAMINA_DISPATCH(array_copy, src, dst, itemsize, ndim, shape, src_strides, dst_strides)
}
inline void array_add(const float* a, const float* b, float* y, index_t n, float alpha) {
  LAMINA_DISPATCH(array_add, a, b, y, n, alpha)
}
inline void array_scale(const float* x, float* y, index_t n, float alpha) {
  LAMINA_DISPATCH(array_scale, x, y, n, alpha)
}
inline index_t gather_rows(const void* x, index_t rows, index_t row_bytes, const void* indices,
                           bool indices_i64, index_t m, void* out) {
  LAMINA_DISPATCH(gather_rows, x, rows, row_bytes, indices, indices_i64, m, out)
}
inline void argmax(const float* x, std::int64_t* out, index_t outer, index_t K, index_t inner) {
  LAMINA_DISPATCH(argmax, x, out, outer, K, inner)
}
inline bool all_finite(const float* x, index_t n) { LAMINA_DISPATCH(all_finite, x, n) }
inline double dot(const float* a, const float* b, index_t n) { LAMINA_DISPATCH(dot, a, b, n) }
}  // namespace lamina::cpu
