// bind_activation.cpp: relu, sigmoid, tanh, leaky_relu and their backward passes. Any shape,
// float32, C-contiguous; the result goes to a new array or to `out` (same shape,
// C-contiguous, writeable; `out` may be the input itself: bind_common.h, Output).
#include <string>

#include "bind_eltwise.h"
#include "lamina/activation.h"

namespace lamina::bind {
namespace {

// kernel(x, y, n): one of the cpu:: activations.
template <class Kernel>
py::array forward(py::handle x_obj, py::handle out_obj, Kernel kernel) {
  View x = contig_arg(x_obj, "x");
  Output out(out_obj, x.shape, {&x}, /*elementwise=*/true);
  {
    py::gil_scoped_release nogil;
    kernel(x.f(), out.data(), x.size());
    out.finish();
  }
  return out.result();
}

// kernel(grad_y, saved, grad_x, n): one of the cpu:: activation backward passes; saved is x
// (relu, leaky_relu) or the forward output y (sigmoid, tanh), named saved_name.
template <class Kernel>
py::array backward(py::handle gy_obj, py::handle saved_obj, const char* saved_name,
                   py::handle out_obj, Kernel kernel) {
  View gy = contig_arg(gy_obj, "grad_y");
  View saved = contig_arg(saved_obj, saved_name);
  if (gy.shape != saved.shape)
    value_error("grad_y has shape " + gy.shape_str() + " but " + saved_name + " has shape " +
                saved.shape_str() + "; they must match");
  Output out(out_obj, gy.shape, {&gy, &saved}, /*elementwise=*/true);
  {
    py::gil_scoped_release nogil;
    kernel(gy.f(), saved.f(), out.data(), gy.size());
    out.finish();
  }
  return out.result();
}

py::array vmath(VMathFn fn, py::handle x_obj) {
  View x = contig_arg(x_obj, "x");
  py::array_t<float> y = new_f32(x.shape);
  float* yp = y.mutable_data();
  {
    py::gil_scoped_release nogil;
    cpu::vmath_apply(fn, x.f(), yp, x.size());
  }
  return std::move(y);
}

}  // namespace

LAMINA_BINDINGS(bind_activation) {
  const py::arg x("x"), gy("grad_y");
  const py::arg_v out = py::arg("out") = py::none();
  m.def("relu", [](py::handle x, py::handle o) { return forward(x, o, cpu::relu); }, x, out,
        "max(x, 0) element-wise (NaN propagates). Any shape, float32, C-contiguous.");
  m.def("relu_backward",
        [](py::handle g, py::handle x, py::handle o) { return backward(g, x, "x", o, cpu::relu_backward); },
        gy, x, out, "grad_y * (x > 0): the gradient of relu with respect to its input x.");
  m.def("sigmoid", [](py::handle x, py::handle o) { return forward(x, o, cpu::sigmoid); }, x, out,
        "1 / (1 + exp(-x)) element-wise, vectorised (max relative error < 1.7 ulp).");
  m.def("sigmoid_backward",
        [](py::handle g, py::handle y, py::handle o) { return backward(g, y, "y", o, cpu::sigmoid_backward); },
        gy, py::arg("y"), out, "grad_y * y * (1 - y), from the forward output y = sigmoid(x).");
  m.def("tanh", [](py::handle x, py::handle o) { return forward(x, o, cpu::tanh); }, x, out,
        "tanh(x) element-wise, vectorised (max relative error < 1.3 ulp).");
  m.def("tanh_backward",
        [](py::handle g, py::handle y, py::handle o) { return backward(g, y, "y", o, cpu::tanh_backward); },
        gy, py::arg("y"), out, "grad_y * (1 - y**2), from the forward output y = tanh(x).");
  m.def("leaky_relu",
        [](py::handle x, float s, py::handle o) {
          return forward(x, o, [s](const float* x, float* y, index_t n) { cpu::leaky_relu(x, y, n, s); });
        },
        x, py::arg("slope") = 0.01, out, "x if x > 0 else slope * x, element-wise.");
  m.def("leaky_relu_backward",
        [](py::handle g, py::handle x, float s, py::handle o) {
          return backward(g, x, "x", o, [s](const float* g, const float* x, float* gx, index_t n) {
            cpu::leaky_relu_backward(g, x, gx, n, s);
          });
        },
        gy, x, py::arg("slope") = 0.01, out, "grad_y * (1 if x > 0 else slope).");
  m.def("_vexp", [](py::handle x) { return vmath(VMathFn::exp, x); }, x,
        "Testing aid: lamina's vectorised float32 exp, element-wise.");
  m.def(
      "_vexp_nonpos",
      [](py::handle x) {
        View xv = contig_arg(x, "x");
        for (index_t i = 0; i < xv.size(); ++i)
          if (xv.f()[i] > 0.0f) value_error("x must be <= 0 (or NaN) everywhere");
        return vmath(VMathFn::exp_nonpos, x);
      },
      py::arg("x"), "Testing aid: lamina's vectorised exp for arguments <= 0 (softmax, sigmoid, tanh).");
  m.def("_vlog", [](py::handle x) { return vmath(VMathFn::log, x); }, x,
        "Testing aid: lamina's vectorised float32 log, element-wise.");
}

}  // namespace lamina::bind
