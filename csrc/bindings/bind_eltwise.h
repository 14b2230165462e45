// bind_eltwise.h: small argument helpers shared by the element-wise, row, loss, dropout, SGD
// and pooling bindings (on top of bind_common.h).
#pragma once
#include <cstdint>
#include <string>

#include "bind_common.h"

namespace lamina::bind {

// f32_contig_arg that also accepts empty arrays: NumPy gives those stride 0, which
// View::c_contiguous() reads as strided. Nothing is read from an empty array.
inline View contig_arg(py::handle obj, const char* name, int ndim = -1, bool writeable = false) {
  View v = f32_arg(obj, name, ndim, writeable);
  if (v.size() > 0 && !v.c_contiguous())
    value_error(std::string(name) + " must be C-contiguous; pass np.ascontiguousarray(" + name + ")");
  return v;
}

// A real number (Python float / int / NumPy scalar); TypeError naming `name` otherwise.
inline double real_arg(py::handle obj, const char* name) {
  if (py::isinstance<py::bool_>(obj) || !(py::isinstance<py::float_>(obj) || py::isinstance<py::int_>(obj) ||
                                          PyNumber_Check(obj.ptr())) ||
      py::isinstance<py::str>(obj))
    type_error(std::string(name) + " must be a real number, got " +
               std::string(py::str(py::type::of(obj).attr("__name__"))));
  PyObject* f = PyNumber_Float(obj.ptr());
  if (!f) {
    PyErr_Clear();
    type_error(std::string(name) + " must be a real number, got " +
               std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  const double v = PyFloat_AsDouble(f);
  Py_DECREF(f);
  return v;
}

// An integer (Python int or NumPy integer, not bool); TypeError naming `name` otherwise.
inline py::int_ int_arg(py::handle obj, const char* name) {
  PyObject* i = py::isinstance<py::bool_>(obj) ? nullptr : PyNumber_Index(obj.ptr());
  if (!i) {
    PyErr_Clear();
    type_error(std::string(name) + " must be an int, got " +
               std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  return py::reinterpret_steal<py::int_>(i);
}

// int_arg as a 64-bit value: beyond int64 is a ValueError naming `name` (pybind11's own cast
// would raise RuntimeError), or, with `saturate`, clamps to the int64 range (for counts such
// as Adam's step, where every value past 2**63 - 1 means the same).
inline index_t int64_arg(py::handle obj, const char* name, bool saturate = false) {
  py::int_ i = int_arg(obj, name);
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(i.ptr(), &overflow);
  if (overflow) {
    if (!saturate) value_error(std::string(name) + " is out of range: " + std::string(py::repr(obj)));
    return overflow > 0 ? INT64_MAX : INT64_MIN;
  }
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  return static_cast<index_t>(v);
}

}  // namespace lamina::bind
