// bind_cuda_array_arg.cpp: lamina.cuda arrays as kernel arguments (bind_cuda_array_arg.h).
#include "bind_cuda_array_arg.h"

#include <pybind11/stl.h>

#include <limits>
#include <sstream>

#include "lamina/cuda/array.h"
#include "lamina/cuda/device.h"

namespace lamina::cuda::bind {
namespace {

struct Runtime {
  py::object rt, array_base, device;
};
Runtime& runtime() {
  static Runtime* r = new Runtime();  // never destroyed: Python objects outlive no interpreter
  return *r;
}

std::string type_name(py::handle h) { return std::string(py::str(py::type::of(h).attr("__name__"))); }

// [lo, hi) bytes spanned by a.
void extent(const DevArray& a, std::uintptr_t& lo, std::uintptr_t& hi) {
  lo = hi = a.ptr;
  if (a.size() == 0) return;
  std::intptr_t l = 0, h = 0;
  for (std::size_t d = 0; d < a.shape.size(); ++d) {
    const std::intptr_t span = static_cast<std::intptr_t>((a.shape[d] - 1) * a.strides[d] * a.itemsize);
    if (span < 0) l += span;
    else h += span;
  }
  lo = a.ptr + l;
  hi = a.ptr + h + a.itemsize;
}

bool same(const DevArray& a, const DevArray& b) {
  return a.ptr == b.ptr && a.shape == b.shape && a.strides == b.strides;
}

}  // namespace

bool overlaps(const DevArray& a, const DevArray& b) {
  if (!a.owner.is(b.owner)) return false;
  std::uintptr_t l1, h1, l2, h2;
  extent(a, l1, h1);
  extent(b, l2, h2);
  return l1 < h2 && l2 < h1;
}

void copy_into(const DevArray& src, const DevArray& dst) {
  if (src.size() == 0) return;
  DeviceGuard guard;
  copy(reinterpret_cast<const void*>(src.ptr), reinterpret_cast<void*>(dst.ptr), src.itemsize,
       static_cast<int>(src.shape.size()), src.shape.data(), src.strides.data(), dst.strides.data());
}

void fill_zero(const DevArray& a) {
  if (a.size() == 0) return;
  DeviceGuard guard;
  fill(reinterpret_cast<void*>(a.ptr), 0, a.itemsize, static_cast<int>(a.shape.size()), a.shape.data(),
       a.strides.data());
}

long long read_int(const DevArray& a, index_t i) {
  DeviceGuard guard;
  if (a.itemsize == 8) {
    std::int64_t v = 0;
    memcpy_d2h(&v, reinterpret_cast<const std::int64_t*>(a.ptr) + i, sizeof v);
    return v;
  }
  std::int32_t v = 0;
  memcpy_d2h(&v, reinterpret_cast<const std::int32_t*>(a.ptr) + i, sizeof v);
  return v;
}

void same_shape(const DevArray& b, const char* b_name, const DevArray& a, const char* a_name, const char* tail) {
  if (b.shape != a.shape)
    throw py::value_error(std::string(b_name) + " has shape " + shape_str(b.shape) + " but " + a_name +
                          " has shape " + shape_str(a.shape) + tail);
}

double real_arg(py::handle obj) { return py::float_(py::reinterpret_borrow<py::object>(obj)).cast<double>(); }

long long index_arg(py::handle obj) {
  PyObject* i = PyNumber_Index(obj.ptr());
  if (!i) throw py::error_already_set();
  const long long v = PyLong_AsLongLong(i);
  Py_DECREF(i);
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  return v;
}

long long count_arg(py::handle obj, const char* name, long long low) {
  if (PyBool_Check(obj.ptr()) ||
      !(PyLong_Check(obj.ptr()) || py::isinstance(obj, py::module_::import("numpy").attr("integer"))))
    throw py::type_error(std::string(name) + " must be an int, got " + type_name(obj));
  const py::int_ i = py::reinterpret_steal<py::int_>(PyNumber_Index(obj.ptr()));
  if (!i) throw py::error_already_set();
  int overflow = 0;
  long long v = PyLong_AsLongLongAndOverflow(i.ptr(), &overflow);
  if (overflow) v = overflow > 0 ? std::numeric_limits<long long>::max() : std::numeric_limits<long long>::min();
  if (v < low)
    throw py::value_error(std::string(name) + " must be >= " + std::to_string(low) + ", got " + std::string(py::str(i)));
  return v;
}

bool truth(py::handle obj) {
  const int t = PyObject_IsTrue(obj.ptr());
  if (t < 0) throw py::error_already_set();
  return t != 0;
}

bool relu_activation(py::handle activation) {
  if (activation.is_none()) return false;
  if (py::isinstance<py::str>(activation) && activation.cast<std::string>() == "relu") return true;
  throw py::value_error("activation must be None or 'relu', got " + std::string(py::repr(activation)));
}

void rows_around(const std::vector<index_t>& shape, py::handle axis, index_t& outer, index_t& K, index_t& inner,
                 int* axis_out) {
  const long long nd = static_cast<long long>(shape.size());
  long long ax = index_arg(axis);
  if (ax < -nd || ax >= nd)
    throw py::value_error("axis " + std::to_string(ax) + " is out of range for x with " + std::to_string(nd) +
                          " dimensions");
  if (ax < 0) ax += nd;
  outer = inner = 1;
  for (long long d = 0; d < nd; ++d) {
    if (d < ax) outer *= shape[d];
    if (d > ax) inner *= shape[d];
  }
  K = shape[ax];
  if (axis_out) *axis_out = static_cast<int>(ax);
}

std::string shape_str(const std::vector<index_t>& shape) {
  std::ostringstream os;
  os << "(";
  for (std::size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  if (shape.size() == 1) os << ",";
  os << ")";
  return os.str();
}

index_t DevArray::size() const {
  index_t n = 1;
  for (index_t s : shape) n *= s;
  return n;
}

bool DevArray::contiguous() const {
  if (size() <= 1) return true;
  index_t expect = 1;
  for (std::size_t d = shape.size(); d-- > 0;) {
    if (shape[d] != 1 && strides[d] != expect) return false;
    expect *= shape[d];
  }
  return true;
}

bool is_array(py::handle obj) { return py::isinstance(obj, runtime().array_base); }

DevArray array_arg(py::handle obj, const char* name, const char* dtype) {
  const Runtime& r = runtime();
  const bool is_array = py::isinstance(obj, r.array_base);
  if (!is_array || py::object(obj.attr("_rt")).ptr() != r.rt.ptr()) {
    const std::string what = is_array ? "an array of " + std::string(py::str(obj.attr("device"))) : type_name(obj);
    throw py::type_error(std::string(name) + " must be a lamina.cuda.Array on " + std::string(py::str(r.device)) +
                         ", got " + what + " (move host data with backend.asarray)");
  }
  DevArray a;
  a.obj = py::reinterpret_borrow<py::object>(obj);
  a.dtype = py::str(obj.attr("dtype"));
  if (dtype && a.dtype != dtype)
    throw py::type_error(std::string(name) + " must be " + dtype + ", got " + a.dtype);
  a.owner = obj.attr("_owner");
  a.ptr = obj.attr("_ptr").cast<std::uintptr_t>();
  a.shape = obj.attr("shape").cast<std::vector<index_t>>();
  a.strides = obj.attr("strides").cast<std::vector<index_t>>();
  a.itemsize = obj.attr("dtype").attr("itemsize").cast<int>();
  return a;
}

DevArray array_arg_of(py::handle obj, const char* name, const std::vector<std::string>& dtypes,
                      const std::string& message) {
  DevArray a = array_arg(obj, name, nullptr);
  for (const std::string& d : dtypes)
    if (a.dtype == d) return a;
  throw py::type_error(message + a.dtype);
}

DevArray from_host(py::handle host) {
  const Runtime& r = runtime();
  return array_arg(r.array_base.attr("from_numpy")(host, py::none(), r.rt), "result", nullptr);
}

DevArray new_array(const std::vector<index_t>& shape, const char* dtype) {
  const Runtime& r = runtime();
  py::tuple t(shape.size());
  for (std::size_t i = 0; i < shape.size(); ++i) t[i] = shape[i];
  py::object a = r.array_base.attr("empty")(t, dtype, r.rt);
  return array_arg(a, "result", nullptr);
}

DevArray contig_arg(py::handle obj, const char* name, const char* dtype) {
  DevArray a = array_arg(obj, name, dtype);
  if (a.contiguous()) return a;
  DevArray c = new_array(a.shape, a.dtype.c_str());
  copy_into(a, c);
  return c;
}

DevOutput::DevOutput(py::handle out_obj, const std::vector<index_t>& shape, const std::vector<const DevArray*>& inputs,
                     bool elementwise, const std::string& dtype)
    : out_obj_(out_obj) {
  if (!out_obj.is_none()) {
    out_ = array_arg(out_obj, "out", nullptr);
    if (out_.dtype != dtype) throw py::type_error("out must have dtype " + dtype + ", got " + out_.dtype);
    if (out_.shape != shape)
      throw py::value_error("out has shape " + shape_str(out_.shape) + ", expected " + shape_str(shape));
    bool clash = !out_.contiguous();
    for (const DevArray* in : inputs) clash = clash || (overlaps(out_, *in) && !(elementwise && same(out_, *in)));
    if (!clash) {
      target_ = out_;
      return;
    }
    copy_back_ = true;
  }
  target_ = new_array(shape, dtype.c_str());
}

py::object DevOutput::result() {
  if (copy_back_) copy_into(target_, out_);
  return out_obj_.is_none() || !copy_back_ ? target_.obj : out_.obj;
}

void bind_array_args(py::module_& m) {
  m.def("bind_runtime", [](py::object rt, py::object array_base, py::object device) {
    runtime() = Runtime{std::move(rt), std::move(array_base), std::move(device)};
  }, py::arg("runtime"), py::arg("array_type"), py::arg("device"),
  "Makes the kernels that take arrays take (and make) `array_type` arrays of `runtime`.");
}

}  // namespace lamina::cuda::bind
