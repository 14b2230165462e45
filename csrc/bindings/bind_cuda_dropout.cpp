// bind_cuda_dropout.cpp: lamina._cuda's dropout and dropout_backward (lamina/cuda/dropout.h) with
// the reference's signatures, on float32 lamina.cuda arrays validated here (strided ones copied):
// p in [0, 1), seed in [0, 2**64), as the reference checks them.
#include <cstdint>
#include <string>

#include "bind_cuda_array_arg.h"
#include "bind_cuda_common.h"
#include "lamina/cuda/dropout.h"

namespace lamina::cuda::bind {

namespace {

double p_arg(py::handle obj) {
  const double p = real_arg(obj);
  if (!(p >= 0.0 && p < 1.0)) throw py::value_error("p must be in [0, 1), got " + std::string(py::repr(obj)));
  return p;
}

std::uint64_t seed_arg(py::handle obj) {
  const py::int_ zero(0), limit = py::int_(1).attr("__lshift__")(64);
  if (PyObject_RichCompareBool(obj.ptr(), zero.ptr(), Py_GE) != 1 ||
      PyObject_RichCompareBool(obj.ptr(), limit.ptr(), Py_LT) != 1) {
    if (PyErr_Occurred()) throw py::error_already_set();
    throw py::value_error("seed must be in [0, 2**64), got " + std::string(py::repr(obj)));
  }
  return py::int_(py::reinterpret_borrow<py::object>(obj)).cast<std::uint64_t>();
}

py::tuple dropout_(py::handle x_obj, py::handle p_obj, py::handle seed_obj) {
  const double p = p_arg(p_obj);
  const std::uint64_t seed = seed_arg(seed_obj);
  const DevArray x = contig_arg(x_obj, "x");
  const DevArray y = new_array(x.shape), mask = new_array(x.shape);
  {
    DeviceGuard guard;
    dropout(x.f(), y.f(), mask.f(), x.size(), p, seed);
  }
  return py::make_tuple(y.obj, mask.obj);
}

py::object dropout_backward_(py::handle gy_obj, py::handle mask_obj, py::handle p_obj) {
  const double p = p_arg(p_obj);
  const DevArray gy = contig_arg(gy_obj, "grad_y"), mask = contig_arg(mask_obj, "mask");
  same_shape(mask, "mask", gy, "grad_y", "");
  const DevArray gx = new_array(gy.shape);
  {
    DeviceGuard guard;
    dropout_backward(gy.f(), mask.f(), gx.f(), gx.size(), p);
  }
  return gx.obj;
}

}  // namespace

void bind_dropout(py::module_& m) {
  m.def("dropout", &dropout_, py::arg("x"), py::arg("p"), py::arg("seed"));
  m.def("dropout_backward", &dropout_backward_, py::arg("grad_y"), py::arg("mask"), py::arg("p"));
}

}  // namespace lamina::cuda::bind
