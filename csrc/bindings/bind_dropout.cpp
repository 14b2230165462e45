// bind_dropout.cpp: dropout (inverted, counter-based mask) and dropout_backward.
#include <cstdint>
#include <string>

#include "bind_eltwise.h"
#include "lamina/dropout.h"

namespace lamina::bind {
namespace {

double p_arg(py::handle obj) {
  const double p = real_arg(obj, "p");
  if (!(p >= 0.0 && p < 1.0)) value_error("p must be in [0, 1), got " + std::string(py::repr(obj)));
  return p;
}

std::uint64_t seed_arg(py::handle obj) {
  py::int_ s = int_arg(obj, "seed");
  if (s < py::int_(0) || s >= py::int_(py::reinterpret_steal<py::object>(PyLong_FromString("18446744073709551616", nullptr, 10))))
    value_error("seed must be in [0, 2**64), got " + std::string(py::repr(obj)));
  return PyLong_AsUnsignedLongLong(s.ptr());
}

py::tuple dropout(py::handle x_obj, py::handle p_obj, py::handle seed_obj) {
  View x = contig_arg(x_obj, "x");
  const double p = p_arg(p_obj);
  const std::uint64_t seed = seed_arg(seed_obj);
  py::array_t<float> y = new_f32(x.shape), mask = new_f32(x.shape);
  float *yp = y.mutable_data(), *mp = mask.mutable_data();
  {
    py::gil_scoped_release nogil;
    cpu::dropout(x.f(), yp, mp, x.size(), p, seed);
  }
  return py::make_tuple(y, mask);
}

py::array dropout_backward(py::handle gy_obj, py::handle mask_obj, py::handle p_obj) {
  View gy = contig_arg(gy_obj, "grad_y"), mask = contig_arg(mask_obj, "mask");
  if (gy.shape != mask.shape)
    value_error("mask has shape " + mask.shape_str() + " but grad_y has shape " + gy.shape_str() +
                "; they must match");
  const double p = p_arg(p_obj);
  py::array_t<float> gx = new_f32(gy.shape);
  float* gp = gx.mutable_data();
  {
    py::gil_scoped_release nogil;
    cpu::dropout_backward(gy.f(), mask.f(), gp, gy.size(), p);
  }
  return std::move(gx);
}

}  // namespace

LAMINA_BINDINGS(bind_dropout) {
  m.def("dropout", &dropout, py::arg("x"), py::arg("p"), py::arg("seed"),
        "Inverted dropout: returns (y, mask) with mask a float32 array of 0 (dropped) and 1 "
        "(kept) and y = x * mask / (1 - p). p in [0, 1) (p = 0: y equals x, mask all ones); "
        "seed an int in [0, 2**64). Element i is kept when a splitmix64 hash of (seed, i) "
        "clears the threshold ceil(p * 2**32), so the mask depends only on the seed and the "
        "flat index: the same for any thread count or CPU path, and equal to "
        "lamina.reference.dropout's.");
  m.def("dropout_backward", &dropout_backward, py::arg("grad_y"), py::arg("mask"), py::arg("p"),
        "grad_y * mask / (1 - p), with the 0/1 mask and the p given to dropout.");
}

}  // namespace lamina::bind
