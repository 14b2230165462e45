// bind_cuda_array_arg.h: the arguments of the kernels whose bindings validate lamina.cuda arrays
// themselves, as the native backend's bindings validate NumPy arrays (bind_common.h): a
// lamina.cuda.Array of this module's runtime seen as (address, shape, element strides, dtype),
// with TypeError / ValueError naming the argument; results allocated from lamina's pool as
// Arrays; an `out` that overlaps an input written through a temporary (the native backend's rule).
// The runtime (lamina.cuda's DeviceRuntime or EmuRuntime) registers itself with bind_runtime.
#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "lamina/cuda/common.h"

namespace lamina::cuda::bind {

namespace py = pybind11;

struct DevArray {
  py::object obj;  // the lamina.cuda.Array
  py::object owner;  // its memory's owner (arrays of one owner may overlap)
  std::uintptr_t ptr = 0;
  std::vector<index_t> shape, strides;  // strides in elements
  std::string dtype;  // "float32", "int64", ...
  int itemsize = 0;
  index_t size() const;
  bool contiguous() const;
  float* f() const { return reinterpret_cast<float*>(ptr); }
};

// `obj` as an array of this runtime of dtype `dtype` (nullptr: any).
DevArray array_arg(py::handle obj, const char* name, const char* dtype = "float32");
// The same, C-contiguous: a strided view is copied.
DevArray contig_arg(py::handle obj, const char* name, const char* dtype = "float32");
DevArray new_array(const std::vector<index_t>& shape, const char* dtype = "float32");

// Where a kernel's result goes: `out` itself when it is a contiguous array of `shape` overlapping
// no input (or, for an element-wise kernel, exactly an input), else a new array, copied into
// `out` by result().
class DevOutput {
 public:
  DevOutput(py::handle out_obj, const std::vector<index_t>& shape, const std::vector<const DevArray*>& inputs,
            bool elementwise = false);
  float* data() const { return target_.f(); }
  py::object result();

 private:
  py::handle out_obj_;
  DevArray out_, target_;
  bool copy_back_ = false;
};

std::string shape_str(const std::vector<index_t>& shape);

void bind_array_args(py::module_& m);

}  // namespace lamina::cuda::bind
