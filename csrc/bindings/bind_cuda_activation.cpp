// bind_cuda_activation.cpp: lamina._cuda's relu, sigmoid, tanh, leaky_relu and their backward
// passes (lamina/cuda/activation.h), with the reference's signatures: float32 lamina.cuda arrays of
// any shape (strided ones copied), validated here; the result to a new array or to `out` (which
// may be the input itself: element-wise).
#include "bind_cuda_array_arg.h"
#include "bind_cuda_common.h"
#include "lamina/cuda/activation.h"

namespace lamina::cuda::bind {

namespace {

template <class Kernel>
py::object forward(py::handle x_obj, py::handle out_obj, Kernel kernel) {
  const DevArray x = contig_arg(x_obj, "x");
  DevOutput out(out_obj, x.shape, {&x}, /*elementwise=*/true);
  {
    DeviceGuard guard;
    kernel(x.f(), out.data(), x.size());
  }
  return out.result();
}

// saved is x (relu, leaky_relu) or the forward output y (sigmoid, tanh), named saved_name.
template <class Kernel>
py::object backward(py::handle gy_obj, py::handle saved_obj, const char* saved_name, py::handle out_obj,
                    Kernel kernel) {
  const DevArray gy = contig_arg(gy_obj, "grad_y");
  const DevArray saved = contig_arg(saved_obj, saved_name);
  if (saved.shape != gy.shape)
    throw py::value_error(std::string(saved_name) + " has shape " + shape_str(saved.shape) + " but grad_y has shape " +
                          shape_str(gy.shape) + "; they must match");
  DevOutput out(out_obj, gy.shape, {&gy, &saved}, /*elementwise=*/true);
  {
    DeviceGuard guard;
    kernel(gy.f(), saved.f(), out.data(), gy.size());
  }
  return out.result();
}

}  // namespace

void bind_activation(py::module_& m) {
  const py::arg x("x"), gy("grad_y");
  const py::arg_v out = py::arg("out") = py::none();
  m.def("relu", [](py::handle x, py::handle o) { return forward(x, o, relu); }, x, out);
  m.def("relu_backward", [](py::handle g, py::handle x, py::handle o) { return backward(g, x, "x", o, relu_backward); },
        gy, x, out);
  m.def("sigmoid", [](py::handle x, py::handle o) { return forward(x, o, sigmoid); }, x, out);
  m.def("sigmoid_backward",
        [](py::handle g, py::handle y, py::handle o) { return backward(g, y, "y", o, sigmoid_backward); }, gy,
        py::arg("y"), out);
  m.def("tanh", [](py::handle x, py::handle o) { return forward(x, o, tanh); }, x, out);
  m.def("tanh_backward", [](py::handle g, py::handle y, py::handle o) { return backward(g, y, "y", o, tanh_backward); },
        gy, py::arg("y"), out);
  m.def("leaky_relu",
        [](py::handle x, float s, py::handle o) {
          return forward(x, o, [s](const float* x, float* y, index_t n) { leaky_relu(x, y, n, s); });
        },
        x, py::arg("slope") = 0.01, out);
  m.def("leaky_relu_backward",
        [](py::handle g, py::handle x, float s, py::handle o) {
          return backward(g, x, "x", o,
                          [s](const float* g, const float* x, float* gx, index_t n) { leaky_relu_backward(g, x, gx, n, s); });
        },
        gy, x, py::arg("slope") = 0.01, out);
}

}  // namespace lamina::cuda::bind
