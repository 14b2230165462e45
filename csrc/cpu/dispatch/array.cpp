// array.cpp: the array entry points of lamina/array.h, each a switch to its per-ISA twin in
// csrc/cpu/kernels/array.cpp (isa_kernel.h). Compiled once, with no arch flags.
#include "lamina/array.h"

#include "isa_kernel.h"

LAMINA_ISA_KERNEL(fill)
LAMINA_ISA_KERNEL(copy)
LAMINA_ISA_KERNEL(add)
LAMINA_ISA_KERNEL(scale)
LAMINA_ISA_KERNEL(gather_rows)
LAMINA_ISA_KERNEL(argmax)
LAMINA_ISA_KERNEL(all_finite)
LAMINA_ISA_KERNEL(dot)

namespace lamina::cpu {
void fill(float* x, index_t n, float value) {
  LAMINA_DISPATCH(fill, x, n, value)
}
void copy(const void* src, void* dst, int itemsize, int ndim, const index_t* shape, const index_t* src_strides, const index_t* dst_strides) {
  LAMINA_DISPATCH(copy, src, dst, itemsize, ndim, shape, src_strides, dst_strides)
}
void add(const float* a, const float* b, float* y, index_t n, float alpha) {
  LAMINA_DISPATCH(add, a, b, y, n, alpha)
}
void scale(const float* x, float* y, index_t n, float alpha) {
  LAMINA_DISPATCH(scale, x, y, n, alpha)
}
index_t gather_rows(const void* x, index_t rows, index_t row_bytes, const void* indices, bool indices_i64, index_t m, void* out) {
  LAMINA_DISPATCH(gather_rows, x, rows, row_bytes, indices, indices_i64, m, out)
}
void argmax(const float* x, std::int64_t* out, index_t outer, index_t K, index_t inner) {
  LAMINA_DISPATCH(argmax, x, out, outer, K, inner)
}
bool all_finite(const float* x, index_t n) {
  LAMINA_DISPATCH(all_finite, x, n)
}
double dot(const float* a, const float* b, index_t n) {
  LAMINA_DISPATCH(dot, a, b, n)
}
}  // namespace lamina::cpu
