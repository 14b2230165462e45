// bind_cuda_upsample.cpp: lamina._cuda's upsample_nearest2d and its backward pass
// (lamina/cuda/upsample.h) with the reference's signatures, on float32 (N, C, H, W) lamina.cuda
// arrays validated here (strided ones copied); scale an int >= 1; the result to a new array or to
// `out` (through a temporary where it overlaps the input).
#include <string>

#include "bind_cuda_array_arg.h"
#include "bind_cuda_common.h"
#include "lamina/cuda/upsample.h"

namespace lamina::cuda::bind {

namespace {

py::object upsample_nearest2d_(py::handle x_obj, py::handle scale, py::handle out_obj) {
  const index_t s = count_arg(scale, "scale");
  DevArray x = array_arg(x_obj, "x");
  if (x.shape.size() != 4) throw py::value_error("x must be 4-D (N, C, H, W), got shape " + shape_str(x.shape));
  x = contig_arg(x_obj, "x");
  const index_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  DevOutput out(out_obj, {N, C, s * H, s * W}, {&x});
  {
    DeviceGuard guard;
    upsample_nearest2d(x.f(), out.data(), N * C, H, W, s);
  }
  return out.result();
}

py::object upsample_nearest2d_backward_(py::handle gy_obj, py::handle scale, py::handle out_obj) {
  const index_t s = count_arg(scale, "scale");
  DevArray gy = array_arg(gy_obj, "grad_y");
  if (gy.shape.size() != 4)
    throw py::value_error("grad_y must be 4-D (N, C, s*H, s*W), got shape " + shape_str(gy.shape));
  const index_t N = gy.shape[0], C = gy.shape[1], SH = gy.shape[2], SW = gy.shape[3];
  if (SH % s || SW % s)
    throw py::value_error("grad_y has shape " + shape_str(gy.shape) +
                          ": its height and width must be multiples of scale " + std::to_string(s));
  gy = contig_arg(gy_obj, "grad_y");
  DevOutput out(out_obj, {N, C, SH / s, SW / s}, {&gy});
  {
    DeviceGuard guard;
    upsample_nearest2d_backward(gy.f(), out.data(), N * C, SH / s, SW / s, s);
  }
  return out.result();
}

}  // namespace

void bind_upsample(py::module_& m) {
  const py::arg_v out = py::arg("out") = py::none();
  m.def("upsample_nearest2d", &upsample_nearest2d_, py::arg("x"), py::arg("scale"), out);
  m.def("upsample_nearest2d_backward", &upsample_nearest2d_backward_, py::arg("grad_y"), py::arg("scale"), out);
}

}  // namespace lamina::cuda::bind
