// bind_cuda_geometry.cpp: window geometry arguments (bind_cuda_geometry.h).
#include "bind_cuda_geometry.h"

namespace lamina::cuda::bind {

namespace {

index_t int_of_pair(py::handle v, const char* name) {
  const bool is_int = PyLong_Check(v.ptr()) || py::isinstance(v, py::module_::import("numpy").attr("integer"));
  if (PyBool_Check(v.ptr()) || !is_int)
    throw py::type_error(std::string(name) + " must be an int or a pair of ints, got " + std::string(py::repr(v)) +
                         " (" + std::string(py::str(py::type::of(v).attr("__name__"))) + ")");
  return py::int_(py::reinterpret_borrow<py::object>(v)).cast<index_t>();
}

}  // namespace

std::string pair_str(index_t a, index_t b) { return "(" + std::to_string(a) + ", " + std::to_string(b) + ")"; }

std::pair<index_t, index_t> pair_arg(py::handle v, const char* name) {
  if (py::isinstance<py::tuple>(v) || py::isinstance<py::list>(v)) {
    const py::sequence s = py::reinterpret_borrow<py::sequence>(v);
    if (s.size() != 2)
      throw py::value_error(std::string(name) + " must be an int or a pair of ints, got a sequence of length " +
                            std::to_string(s.size()) + ": " + std::string(py::repr(v)));
    return {int_of_pair(s[0], name), int_of_pair(s[1], name)};
  }
  const index_t i = int_of_pair(v, name);
  return {i, i};
}

std::pair<index_t, index_t> conv_output_shape(index_t H, index_t W, index_t kh, index_t kw, index_t sh, index_t sw,
                                              index_t ph, index_t pw, index_t dh, index_t dw) {
  if (kh < 1 || kw < 1) throw py::value_error("kernel_size must be >= 1, got " + pair_str(kh, kw));
  if (sh < 1 || sw < 1) throw py::value_error("stride must be >= 1, got " + pair_str(sh, sw));
  if (ph < 0 || pw < 0) throw py::value_error("padding must be >= 0, got " + pair_str(ph, pw));
  if (dh < 1 || dw < 1) throw py::value_error("dilation must be >= 1, got " + pair_str(dh, dw));
  const index_t eh = dh * (kh - 1) + 1, ew = dw * (kw - 1) + 1;  // the dilated kernel's extent
  const index_t hp = H + 2 * ph, wp = W + 2 * pw;
  // floor division, as Python's //, for a kernel larger than the padded input
  const index_t OH = hp >= eh ? (hp - eh) / sh + 1 : 0, OW = wp >= ew ? (wp - ew) / sw + 1 : 0;
  if (OH < 1 || OW < 1) {
    const std::string dil = dh != 1 || dw != 1 ? " with dilation " + pair_str(dh, dw) : "";
    throw py::value_error("kernel_size " + pair_str(kh, kw) + " (extent " + pair_str(eh, ew) + dil +
                          ") is larger than the padded input " + pair_str(hp, wp) + " (input " + pair_str(H, W) +
                          ", padding " + pair_str(ph, pw) + ")");
  }
  return {OH, OW};
}

}  // namespace lamina::cuda::bind
