// bind_common.h: what every binding file shares: argument validation with clear Python
// errors, zero-copy views of NumPy arrays as (pointer, shape, element strides), output
// allocation, and the registry through which each bind_*.cpp adds its functions.
// Bindings validate, allocate and release the GIL; they hold no math and no loops over data.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <utility>
#include <vector>

#include "lamina/common.h"

namespace py = pybind11;

namespace lamina::bind {

using Registrar = void (*)(py::module_&);
std::vector<Registrar>& registry();
struct Register {
  explicit Register(Registrar f) { registry().push_back(f); }
};
// LAMINA_BINDINGS(bind_gemm) { m.def(...); }  -- runs when _native is imported.
#define LAMINA_BINDINGS(fname)                                 \
  static void fname(py::module_& m);                           \
  static ::lamina::bind::Register fname##_registered(&fname);  \
  static void fname(py::module_& m)

// An empty (null) array handle. pybind11's default constructors of py::array and
// py::array_t allocate a zero-length NumPy array (about 0.15 us each, and a View, an Output
// and a fresh result are made on every call); this holds nothing until assigned.
template <class A = py::array>
A no_array() {
  return py::reinterpret_steal<A>(py::handle());
}

// A validated float32 (or other dtype) ndarray seen through raw pointer + element strides.
struct View {
  py::array arr = no_array();  // not py::array{}: that allocates an empty array
  char* data = nullptr;
  int ndim = 0;
  std::vector<index_t> shape, strides;  // strides in elements, may be negative or zero
  index_t size() const;
  bool c_contiguous() const;
  float* f() const { return reinterpret_cast<float*>(data); }
  std::string shape_str() const;
};

std::string shape_str(const std::vector<index_t>& shape);

// Checks `obj` is a numpy.ndarray of float32 with `ndim` dimensions (-1: any), element-aligned
// strides, and (if `writeable`) not read-only. Raises TypeError (not an array, wrong dtype)
// or ValueError (dimensions, layout, read-only) naming `name`.
View f32_arg(py::handle obj, const char* name, int ndim = -1, bool writeable = false);
// Same for an integer array (any integer dtype) viewed as int64; converts (copies) if needed.
View i64_arg(py::handle obj, const char* name, int ndim = -1);
// Any dtype in `dtypes` (e.g. {float32, int32, int64}), viewed as is (no conversion): TypeError
// naming `name` for another dtype, ValueError for dimensions / alignment / read-only.
View typed_arg(py::handle obj, const char* name, const std::vector<py::dtype>& dtypes, int ndim = -1,
               bool writeable = false);
// As f32_arg, plus C-contiguity (no copy is made: a strided view is rejected, naming `name`).
View f32_contig_arg(py::handle obj, const char* name, int ndim = -1, bool writeable = false);

py::array_t<float> new_f32(const std::vector<index_t>& shape);
View view_of(py::array_t<float>& a);

// True when the memory spans of two views intersect (then results go through a temporary).
bool overlaps(const View& a, const View& b);

// Where a kernel's result goes: `out` when given (float32, C-contiguous, writeable, of `shape`:
// ValueError/TypeError naming "out" otherwise), else a new array. When `out` overlaps one of
// `inputs` the kernel writes a temporary and finish() copies it over. `elementwise`: the
// kernel reads each element before it writes that same element, so `out` may be exactly an
// input (the same memory, e.g. relu(x, out=x)); only a partial overlap needs the temporary.
class Output {
 public:
  Output(py::handle out_obj, const std::vector<index_t>& shape, const std::vector<const View*>& inputs,
         bool elementwise = false);
  float* data() const { return data_; }
  void finish() const;  // after the kernel; safe without the GIL
  py::array result();   // `out` itself, or the new array
 private:
  py::handle out_obj_;
  View out_;
  py::array_t<float> fresh_ = no_array<py::array_t<float>>();
  float* data_ = nullptr;
  index_t size_ = 0;
  bool copy_back_ = false;
};

// A geometry argument (stride, padding, kernel_size, dilation): an int (Python int or NumPy
// integer, not bool) for both dimensions, or a tuple / list of two -> (h, w). A wrong length
// is a ValueError, anything not an integer (float, bool, str, ...) a TypeError, both naming
// `name`, as in PyTorch (a float kernel size is never truncated).
std::pair<index_t, index_t> int_pair_arg(py::handle obj, const char* name);

// activation=None -> false, "relu" -> true; anything else is a ValueError.
bool relu_activation(py::handle act);

[[noreturn]] void value_error(const std::string& msg);
[[noreturn]] void type_error(const std::string& msg);

}  // namespace lamina::bind
