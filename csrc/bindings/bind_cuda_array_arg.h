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

// Whether `obj` is a lamina.cuda.Array (of any runtime).
bool is_array(py::handle obj);
// `obj` as an array of this runtime of dtype `dtype` (nullptr: any).
DevArray array_arg(py::handle obj, const char* name, const char* dtype = "float32");
// `obj` as an array of this runtime whose dtype is one of `dtypes`, else TypeError `message`.
DevArray array_arg_of(py::handle obj, const char* name, const std::vector<std::string>& dtypes,
                      const std::string& message);
// The same, C-contiguous: a strided view is copied.
DevArray contig_arg(py::handle obj, const char* name, const char* dtype = "float32");
DevArray new_array(const std::vector<index_t>& shape, const char* dtype = "float32");
// A new array of this runtime holding a copy of host array `host`.
DevArray from_host(py::handle host);
// True when the memory spans of a and b (of one owner) intersect.
bool overlaps(const DevArray& a, const DevArray& b);
// a (any strides) into b (same shape, any strides, not overlapping a).
void copy_into(const DevArray& src, const DevArray& dst);
void fill_zero(const DevArray& a);
// Element i of a contiguous int32 / int64 array (one copy back).
long long read_int(const DevArray& a, index_t i);
// ValueError "<b_name> has shape B but <a_name> has shape A<tail>" unless the shapes match.
void same_shape(const DevArray& b, const char* b_name, const DevArray& a, const char* a_name,
                const char* tail = "; they must match");
// float(obj) and operator.index(obj), as Python spells them (their errors too).
double real_arg(py::handle obj);
long long index_arg(py::handle obj);
// A count (a Python or NumPy int, not a bool) >= low, as the reference's _count checks it:
// TypeError / ValueError naming `name`; past the int64 range it saturates.
long long count_arg(py::handle obj, const char* name, long long low = 1);
// bool(obj).
bool truth(py::handle obj);
// activation=None -> false, "relu" -> true; anything else is a ValueError.
bool relu_activation(py::handle activation);
// (outer, K, inner) around `axis` of an array of `shape` (ValueError naming the axis), the axis
// made non-negative in *axis_out.
void rows_around(const std::vector<index_t>& shape, py::handle axis, index_t& outer, index_t& K, index_t& inner,
                 int* axis_out = nullptr);

// Where a kernel's result goes: `out` itself when it is a contiguous array of `shape` overlapping
// no input (or, for an element-wise kernel, exactly an input), else a new array, copied into
// `out` by result().
class DevOutput {
 public:
  DevOutput(py::handle out_obj, const std::vector<index_t>& shape, const std::vector<const DevArray*>& inputs,
            bool elementwise = false, const std::string& dtype = "float32");
  float* data() const { return target_.f(); }
  void* raw() const { return reinterpret_cast<void*>(target_.ptr); }
  py::object result();

 private:
  py::handle out_obj_;
  DevArray out_, target_;
  bool copy_back_ = false;
};

std::string shape_str(const std::vector<index_t>& shape);

void bind_array_args(py::module_& m);

}  // namespace lamina::cuda::bind
