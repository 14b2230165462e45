// checked.h: size arithmetic that cannot wrap. Every size, offset and workspace length formed
// from caller-controlled numbers (shapes, kernel_size, stride, padding, dilation, scale) goes
// through these, in the bindings before anything is allocated and in the kernels for their
// scratch: a product or sum that does not fit in 64 bits is an error, never a wrapped value
// (a wrapped scratch size once let max_pool2d's padding loop write far out of bounds).
//
// size_error derives from std::invalid_argument, which pybind11 turns into ValueError; the
// message names the argument that made the size impossible. Checks run once per call (or per
// tile), never per element.
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

#include "lamina/common.h"

namespace lamina {

struct size_error : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

[[noreturn]] inline void throw_size_error(const char* what) {
  throw size_error(std::string(what) + " is too large: the sizes it implies overflow 64 bits");
}

// r = a + b, a * b: false (r unspecified) when the exact result does not fit in index_t.
inline bool add_ok(index_t a, index_t b, index_t& r) { return !__builtin_add_overflow(a, b, &r); }
inline bool mul_ok(index_t a, index_t b, index_t& r) { return !__builtin_mul_overflow(a, b, &r); }

// a + b, a * b, or size_error naming `what`.
inline index_t checked_add(index_t a, index_t b, const char* what) {
  index_t r;
  if (!add_ok(a, b, r)) throw_size_error(what);
  return r;
}
inline index_t checked_mul(index_t a, index_t b, const char* what) {
  index_t r;
  if (!mul_ok(a, b, r)) throw_size_error(what);
  return r;
}

// Bytes of an array of `shape` with `itemsize`-byte elements, counted as NumPy does (the
// product of the nonzero extents, so (0, 2**62) float32 is as impossible as (1, 2**62)):
// false when an extent is negative or the count does not fit (NumPy would refuse it).
inline bool nbytes_ok(const std::vector<index_t>& shape, index_t itemsize, index_t& r) {
  r = itemsize;
  for (index_t d : shape)
    if (d < 0 || (d != 0 && !mul_ok(r, d, r))) return false;
  return true;
}
// The same, or size_error naming `what`.
inline index_t checked_nbytes(const std::vector<index_t>& shape, index_t itemsize, const char* what) {
  index_t r;
  if (!nbytes_ok(shape, itemsize, r)) throw_size_error(what);
  return r;
}

}  // namespace lamina
