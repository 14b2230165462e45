#include "bind_common.h"

#include "lamina/checked.h"

#include <algorithm>
#include <cstdint>
#include <sstream>

namespace lamina::bind {

std::vector<Registrar>& registry() {
  static std::vector<Registrar> r;
  return r;
}

void value_error(const std::string& msg) { throw py::value_error(msg); }
void type_error(const std::string& msg) { throw py::type_error(msg); }

std::string shape_str(const std::vector<index_t>& shape) {
  std::ostringstream os;
  os << "(";
  for (std::size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  if (shape.size() == 1) os << ",";
  os << ")";
  return os.str();
}

std::string View::shape_str() const { return bind::shape_str(shape); }

index_t View::size() const {
  index_t n = 1;
  for (index_t s : shape) n *= s;
  return n;
}

bool View::c_contiguous() const {
  if (size() == 0) return true;  // NumPy gives empty arrays arbitrary (often zero) strides
  index_t expect = 1;
  for (int d = ndim - 1; d >= 0; --d) {
    if (shape[d] != 1 && strides[d] != expect) return false;
    expect *= shape[d];
  }
  return true;
}

static View make_view(py::array arr, const char* name, int ndim, bool writeable) {
  View v;
  v.ndim = static_cast<int>(arr.ndim());
  if (ndim >= 0 && v.ndim != ndim) {
    std::vector<index_t> s(arr.shape(), arr.shape() + arr.ndim());
    value_error(std::string(name) + " must be " + std::to_string(ndim) + "-D, got " +
                std::to_string(v.ndim) + "-D array of shape " + shape_str(s));
  }
  if (writeable && !arr.writeable()) value_error(std::string(name) + " is read-only (not writeable)");
  const auto item = static_cast<index_t>(arr.itemsize());
  v.data = static_cast<char*>(const_cast<void*>(arr.data()));
  // A zero-size array has no element to read: its pointer and strides may be anything (an
  // unpickled or sliced empty array is often at an odd address), so only its shape matters.
  const bool empty = arr.size() == 0;
  if (!empty && reinterpret_cast<std::uintptr_t>(v.data) % static_cast<std::uintptr_t>(item) != 0)
    value_error(std::string(name) + " is not aligned to its element size; pass np.ascontiguousarray(" +
                name + ")");
  for (int d = 0; d < v.ndim && !empty; ++d) {
    const index_t st = arr.strides(d);
    if (st % item != 0)
      value_error(std::string(name) + " has a stride that is not a multiple of its element size; pass np.ascontiguousarray(" +
                  name + ")");
  }
  v.shape.assign(arr.shape(), arr.shape() + v.ndim);
  v.strides.assign(arr.strides(), arr.strides() + v.ndim);
  for (index_t& st : v.strides) st /= item;
  v.arr = std::move(arr);
  return v;
}

static py::array require_ndarray(py::handle obj, const char* name, const char* expected) {
  if (!py::isinstance<py::array>(obj))
    type_error(std::string(name) + " must be a numpy.ndarray of " + expected + ", got " +
               std::string(py::str(py::type::of(obj).attr("__name__"))));
  return py::reinterpret_borrow<py::array>(obj);
}

View f32_arg(py::handle obj, const char* name, int ndim, bool writeable) {
  py::array arr = require_ndarray(obj, name, "float32");
  // Fast path (no dtype objects built): native-endian float32 is NPY_FLOAT (11).
  const auto* descr = py::detail::array_descriptor_proxy(py::detail::array_proxy(arr.ptr())->descr);
  const bool native_f32 = descr->type_num == 11 && descr->byteorder != '>';
  if (!native_f32 && !arr.dtype().equal(py::dtype::of<float>()))
    type_error(std::string(name) + " must have dtype float32, got " +
               std::string(py::str(arr.dtype())));
  return make_view(std::move(arr), name, ndim, writeable);
}

View f32_contig_arg(py::handle obj, const char* name, int ndim, bool writeable) {
  View v = f32_arg(obj, name, ndim, writeable);
  if (!v.c_contiguous())
    value_error(std::string(name) + " must be C-contiguous; pass np.ascontiguousarray(" + name + ")");
  return v;
}

View i64_arg(py::handle obj, const char* name, int ndim) {
  py::array arr = require_ndarray(obj, name, "integers");
  const char kind = arr.dtype().kind();
  if (kind != 'i' && kind != 'u')
    type_error(std::string(name) + " must have an integer dtype, got " + std::string(py::str(arr.dtype())));
  py::array_t<std::int64_t, py::array::c_style | py::array::forcecast> conv(arr);
  return make_view(std::move(conv), name, ndim, false);
}

View typed_arg(py::handle obj, const char* name, const std::vector<py::dtype>& dtypes, int ndim,
               bool writeable) {
  // The list of dtypes is spelled out only for an error (py::str of a dtype costs microseconds).
  auto names = [&] {
    std::string s;
    for (std::size_t i = 0; i < dtypes.size(); ++i)
      s += (i == 0 ? "" : i + 1 == dtypes.size() ? " or " : ", ") + std::string(py::str(dtypes[i]));
    return s;
  };
  if (!py::isinstance<py::array>(obj)) require_ndarray(obj, name, names().c_str());
  py::array arr = py::reinterpret_borrow<py::array>(obj);
  bool ok = false;
  for (const py::dtype& d : dtypes) ok = ok || arr.dtype().equal(d);
  if (!ok) type_error(std::string(name) + " must have dtype " + names() + ", got " + std::string(py::str(arr.dtype())));
  return make_view(std::move(arr), name, ndim, writeable);
}

py::array_t<float> new_f32(const std::vector<index_t>& shape) {
  checked_nbytes(shape, sizeof(float), "the result's shape");
  std::vector<py::ssize_t> s(shape.begin(), shape.end());
  return py::array_t<float>(s);
}

View view_of(py::array_t<float>& a) { return make_view(a, "out", -1, true); }

static void span(const View& v, std::intptr_t& lo, std::intptr_t& hi, index_t item) {
  std::intptr_t base = reinterpret_cast<std::intptr_t>(v.data);
  lo = hi = base;
  for (int d = 0; d < v.ndim; ++d) {
    if (v.shape[d] == 0) {
      hi = lo;
      return;
    }
    std::intptr_t ext = static_cast<std::intptr_t>((v.shape[d] - 1) * v.strides[d] * item);
    if (ext < 0) lo += ext; else hi += ext;
  }
  hi += item;
}

bool overlaps(const View& a, const View& b) {
  std::intptr_t alo, ahi, blo, bhi;
  span(a, alo, ahi, static_cast<index_t>(a.arr.itemsize()));
  span(b, blo, bhi, static_cast<index_t>(b.arr.itemsize()));
  return alo < bhi && blo < ahi && ahi > alo && bhi > blo;
}

Output::Output(py::handle out_obj, const std::vector<index_t>& shape,
               const std::vector<const View*>& inputs, bool elementwise)
    : out_obj_(out_obj) {
  // A shape made from caller-controlled numbers is checked before anything is formed from it
  // (the bindings name the argument first; this is the backstop).
  size_ = checked_nbytes(shape, sizeof(float), "the output shape") / index_t(sizeof(float));
  for (index_t d : shape) size_ = d == 0 ? 0 : size_;
  if (!out_obj.is_none()) {
    out_ = f32_contig_arg(out_obj, "out", -1, true);
    if (out_.shape != shape)
      value_error("out has shape " + out_.shape_str() + ", expected " + shape_str(shape));
    for (const View* in : inputs)
      copy_back_ |= overlaps(out_, *in) && !(elementwise && in->data == out_.data);
  }
  if (out_obj.is_none() || copy_back_) {
    fresh_ = new_f32(shape);
    data_ = fresh_.mutable_data();
  } else {
    data_ = out_.f();
  }
}

void Output::finish() const {
  if (copy_back_) std::copy(data_, data_ + size_, out_.f());
}

py::array Output::result() {
  if (!out_obj_.is_none()) return py::reinterpret_borrow<py::array>(out_obj_);
  return std::move(fresh_);
}

std::pair<index_t, index_t> int_pair_arg(py::handle obj, const char* name) {
  auto what = [&]() { return std::string(name) + " must be an int or a pair of ints, got "; };
  auto as_int = [&](py::handle v) -> index_t {
    // Python ints and NumPy integer scalars (anything with __index__), but not bool.
    if (py::isinstance<py::bool_>(v) || !PyIndex_Check(v.ptr()))
      type_error(what() + std::string(py::repr(v)) + " (" +
                 std::string(py::str(py::type::of(v).attr("__name__"))) + ")");
    PyObject* i = PyNumber_Index(v.ptr());
    if (!i) throw py::error_already_set();
    int overflow = 0;
    const long long val = PyLong_AsLongLongAndOverflow(i, &overflow);
    Py_DECREF(i);
    if (overflow) value_error(std::string(name) + " is out of range: " + std::string(py::repr(v)));
    if (val == -1 && PyErr_Occurred()) throw py::error_already_set();
    return static_cast<index_t>(val);
  };
  if (py::isinstance<py::tuple>(obj) || py::isinstance<py::list>(obj)) {
    py::sequence seq = py::reinterpret_borrow<py::sequence>(obj);
    if (seq.size() != 2)
      value_error(what() + "a sequence of length " + std::to_string(seq.size()) + ": " +
                  std::string(py::repr(obj)));
    return {as_int(seq[0]), as_int(seq[1])};
  }
  const index_t v = as_int(obj);
  return {v, v};
}

bool relu_activation(py::handle act) {
  if (act.is_none()) return false;
  if (!py::isinstance<py::str>(act) || act.cast<std::string>() != "relu")
    value_error("activation must be None or 'relu', got " + std::string(py::repr(act)));
  return true;
}

}  // namespace lamina::bind
