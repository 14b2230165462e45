// bind_upsample.cpp: upsample_nearest2d and its backward (NCHW float32, integer scale >= 1).
#include <string>

#include "bind_eltwise.h"
#include "lamina/checked.h"
#include "lamina/upsample.h"

namespace lamina::bind {
namespace {

index_t scale_arg(py::handle obj) {
  const index_t s = int64_arg(obj, "scale");
  if (s < 1) value_error("scale must be >= 1, got " + std::to_string(s));
  return s;
}

py::array upsample_nearest2d(py::handle x_obj, py::handle scale_obj, py::handle out_obj) {
  View x = contig_arg(x_obj, "x", 4);
  const index_t s = scale_arg(scale_obj);
  const index_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  // y (N, C, s*H, s*W): its extents and its bytes must fit in 64 bits (checked.h).
  const std::vector<index_t> shape{N, C, checked_mul(s, H, "scale"), checked_mul(s, W, "scale")};
  checked_nbytes(shape, sizeof(float), "scale");
  Output out(out_obj, shape, {&x});
  float* y = out.data();
  {
    py::gil_scoped_release nogil;
    cpu::upsample_nearest2d(x.f(), y, N * C, H, W, s);
    out.finish();
  }
  return out.result();
}

py::array upsample_nearest2d_backward(py::handle gy_obj, py::handle scale_obj, py::handle out_obj) {
  View gy = contig_arg(gy_obj, "grad_y", 4);
  const index_t s = scale_arg(scale_obj);
  const index_t N = gy.shape[0], C = gy.shape[1], SH = gy.shape[2], SW = gy.shape[3];
  if (SH % s != 0 || SW % s != 0)
    value_error("grad_y has shape " + gy.shape_str() + ": its height and width must be multiples of scale " +
                std::to_string(s));
  const std::vector<index_t> shape{N, C, SH / s, SW / s};
  Output out(out_obj, shape, {&gy});
  float* gx = out.data();
  {
    py::gil_scoped_release nogil;
    cpu::upsample_nearest2d_backward(gy.f(), gx, N * C, SH / s, SW / s, s);
    out.finish();
  }
  return out.result();
}

}  // namespace

LAMINA_BINDINGS(bind_upsample) {
  m.def("upsample_nearest2d", &upsample_nearest2d, py::arg("x"), py::arg("scale"), py::arg("out") = py::none(),
        "x (N, C, H, W) float32 -> y (N, C, scale*H, scale*W): each input cell repeated as a "
        "scale x scale block (nearest neighbour). scale: int >= 1.");
  m.def("upsample_nearest2d_backward", &upsample_nearest2d_backward, py::arg("grad_y"), py::arg("scale"),
        py::arg("out") = py::none(),
        "grad_y (N, C, scale*H, scale*W) -> grad_x (N, C, H, W): the sum of each scale x scale block.");
}

}  // namespace lamina::bind
