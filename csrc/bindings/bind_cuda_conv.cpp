// bind_cuda_conv.cpp: lamina._cuda's conv2d and conv2d_backward (lamina/cuda/conv.h) with the
// reference's signatures, on float32 lamina.cuda arrays validated here (strided ones copied): x
// (N, C, H, W), w (O, C, kH, kW), b (O,) or None; the geometry is the CPU's Conv2dShape, built
// from stride, padding and dilation as the reference checks them (lamina/reference/conv.py).
#include <string>
#include <vector>

#include "bind_cuda_array_arg.h"
#include "bind_cuda_common.h"
#include "bind_cuda_geometry.h"
#include "lamina/cuda/conv.h"

namespace lamina::cuda::bind {

namespace {

Conv2dShape conv2d_shape(const DevArray& x, const DevArray& w, py::handle stride, py::handle padding,
                         py::handle dilation) {
  if (x.shape.size() != 4) throw py::value_error("x must be 4-D (N, C, H, W), got shape " + shape_str(x.shape));
  if (w.shape.size() != 4) throw py::value_error("w must be 4-D (O, C, kH, kW), got shape " + shape_str(w.shape));
  if (w.shape[1] != x.shape[1])
    throw py::value_error("w has " + std::to_string(w.shape[1]) + " input channels but x has " +
                          std::to_string(x.shape[1]) + " (x shape " + shape_str(x.shape) + ", w shape " +
                          shape_str(w.shape) + ")");
  if (w.shape[2] < 1 || w.shape[3] < 1)
    throw py::value_error("w has an empty kernel (w shape " + shape_str(w.shape) + ")");
  const auto [sh, sw] = pair_arg(stride, "stride");
  const auto [ph, pw] = pair_arg(padding, "padding");
  const auto [dh, dw] = pair_arg(dilation, "dilation");
  const auto [OH, OW] = conv_output_shape(x.shape[2], x.shape[3], w.shape[2], w.shape[3], sh, sw, ph, pw, dh, dw);
  return Conv2dShape{x.shape[0], x.shape[1], x.shape[2], x.shape[3], w.shape[0], w.shape[2], w.shape[3],
                     sh, sw, ph, pw, dh, dw, OH, OW};
}

py::object conv2d_(py::handle x_obj, py::handle w_obj, py::handle b_obj, py::handle stride, py::handle padding,
                   py::handle dilation, py::handle activation, py::handle out_obj) {
  const bool relu = relu_activation(activation);
  const DevArray x = contig_arg(x_obj, "x"), w = contig_arg(w_obj, "w");
  const Conv2dShape s = conv2d_shape(x, w, stride, padding, dilation);
  std::vector<const DevArray*> inputs{&x, &w};
  DevArray b;
  if (!b_obj.is_none()) {
    b = contig_arg(b_obj, "b");
    if (b.shape != std::vector<index_t>{s.O})
      throw py::value_error("b must have shape (" + std::to_string(s.O) + ",), got " + shape_str(b.shape));
    inputs.push_back(&b);
  }
  DevOutput out(out_obj, {s.N, s.O, s.OH, s.OW}, inputs);
  if (s.N * s.O * s.OH * s.OW != 0) {
    DeviceGuard guard;
    conv2d(s, x.f(), w.f(), b_obj.is_none() ? nullptr : b.f(), relu, out.data());
  }
  return out.result();
}

py::tuple conv2d_backward_(py::handle x_obj, py::handle w_obj, py::handle gy_obj, py::handle stride,
                           py::handle padding, py::handle dilation, py::handle compute_grad_x) {
  const DevArray x = contig_arg(x_obj, "x"), w = contig_arg(w_obj, "w"), gy = contig_arg(gy_obj, "grad_y");
  const Conv2dShape s = conv2d_shape(x, w, stride, padding, dilation);
  const std::vector<index_t> want{s.N, s.O, s.OH, s.OW};
  if (gy.shape != want)
    throw py::value_error("grad_y must have shape " + shape_str(want) + ", got " + shape_str(gy.shape));
  const bool with_gx = truth(compute_grad_x);
  DevArray gx;
  if (with_gx) gx = new_array(x.shape);
  const DevArray gw = new_array(w.shape), gb = new_array({s.O});
  if (s.N * s.OH * s.OW == 0) {
    fill_zero(gw);
    fill_zero(gb);
    if (with_gx) fill_zero(gx);
  } else {
    DeviceGuard guard;
    conv2d_backward(s, x.f(), w.f(), gy.f(), with_gx ? gx.f() : nullptr, gw.f(), gb.f());
  }
  return py::make_tuple(with_gx ? gx.obj : py::none(), gw.obj, gb.obj);
}

}  // namespace

void bind_conv(py::module_& m) {
  const py::arg_v stride = py::arg("stride") = 1, padding = py::arg("padding") = 0, dilation = py::arg("dilation") = 1;
  m.def("conv2d", &conv2d_, py::arg("x"), py::arg("w"), py::arg("b") = py::none(), stride, padding, dilation,
        py::arg("activation") = py::none(), py::arg("out") = py::none());
  m.def("conv2d_backward", &conv2d_backward_, py::arg("x"), py::arg("w"), py::arg("grad_y"), stride, padding, dilation,
        py::arg("compute_grad_x") = true);
}

}  // namespace lamina::cuda::bind
