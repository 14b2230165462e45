// bind_cuda_pool.cpp: lamina._cuda's max_pool2d, avg_pool2d and their backward passes
// (lamina/cuda/pool.h) with the reference's signatures, on float32 (N, C, H, W) lamina.cuda arrays
// validated here (strided ones copied); the geometry is the CPU's Pool2d, built from kernel_size,
// stride (default: kernel_size) and padding (at most half the kernel) as the reference checks them.
#include <cstdint>
#include <string>
#include <vector>

#include "bind_cuda_array_arg.h"
#include "bind_cuda_common.h"
#include "bind_cuda_geometry.h"
#include "lamina/cuda/pool.h"

namespace lamina::cuda::bind {

namespace {

// The geometry of pooling an input of `shape` (N, C, H, W).
Pool2d pool2d(const std::vector<index_t>& shape, py::handle ks, py::handle st, py::handle pd) {
  if (shape.size() != 4) throw py::value_error("x must be 4-D (N, C, H, W), got shape " + shape_str(shape));
  const auto [kh, kw] = pair_arg(ks, "kernel_size");
  const auto [sh, sw] = st.is_none() ? std::make_pair(kh, kw) : pair_arg(st, "stride");
  const auto [ph, pw] = pair_arg(pd, "padding");
  const index_t H = shape[2], W = shape[3];
  if (H < 1 || W < 1) throw py::value_error("input must have nonzero height and width, got " + pair_str(H, W));
  const auto [OH, OW] = conv_output_shape(H, W, kh, kw, sh, sw, ph, pw);
  if (ph > kh / 2 || pw > kw / 2)
    throw py::value_error("padding " + pair_str(ph, pw) + " must be at most half of kernel_size " + pair_str(kh, kw));
  return Pool2d{shape[0] * shape[1], H, W, OH, OW, kh, kw, sh, sw, ph, pw};
}

// input_shape: a sequence of ints (operator.index of each).
std::vector<index_t> shape_arg(py::handle obj) {
  std::vector<index_t> shape;
  for (py::handle s : py::iter(obj)) shape.push_back(index_arg(s));
  return shape;
}

py::tuple max_pool2d_(py::handle x_obj, py::handle ks, py::handle st, py::handle pd) {
  const DevArray x = contig_arg(x_obj, "x");
  const Pool2d g = pool2d(x.shape, ks, st, pd);
  const std::vector<index_t> shape{x.shape[0], x.shape[1], g.OH, g.OW};
  const DevArray y = new_array(shape), idx = new_array(shape, "int64");
  if (y.size()) {
    DeviceGuard guard;
    max_pool2d(x.f(), y.f(), reinterpret_cast<std::int64_t*>(idx.ptr), g);
  }
  return py::make_tuple(y.obj, idx.obj);
}

py::object max_pool2d_backward_(py::handle gy_obj, py::handle idx_obj, py::handle shape_obj) {
  const std::vector<index_t> in = shape_arg(shape_obj);
  if (in.size() != 4)
    throw py::value_error(in.size() < 4 ? "not enough values to unpack (expected 4, got " + std::to_string(in.size()) + ")"
                                        : std::string("too many values to unpack (expected 4)"));
  const DevArray gy = contig_arg(gy_obj, "grad_y"), idx = contig_arg(idx_obj, "indices", "int64");
  if (gy.shape != idx.shape || gy.shape.size() != 4 || gy.shape[0] != in[0] || gy.shape[1] != in[1])
    throw py::value_error("grad_y " + shape_str(gy.shape) + ", indices " + shape_str(idx.shape) + " and input_shape " +
                          std::string(py::repr(py::tuple(py::reinterpret_borrow<py::object>(shape_obj)))) +
                          " disagree");
  const DevArray gx = new_array(in);
  const Pool2d g{in[0] * in[1], in[2], in[3], gy.shape[2], gy.shape[3], 1, 1, 1, 1, 0, 0};
  index_t bad;
  {
    DeviceGuard guard;
    bad = max_pool2d_backward(gy.f(), reinterpret_cast<const std::int64_t*>(idx.ptr), gx.f(), g);
  }
  if (bad >= 0) {
    const index_t OW = g.OW, OH = g.OH, C = in[1];
    const index_t ow = bad % OW, oh = bad / OW % OH, c = bad / (OW * OH) % C, n = bad / (OW * OH * C);
    throw py::value_error("indices[" + std::to_string(n) + ", " + std::to_string(c) + ", " + std::to_string(oh) +
                          ", " + std::to_string(ow) + "] = " + std::to_string(read_int(idx, bad)) +
                          " is out of range [0, " + std::to_string(in[2] * in[3]) + ")");
  }
  return gx.obj;
}

py::object avg_pool2d_(py::handle x_obj, py::handle ks, py::handle st, py::handle pd) {
  const DevArray x = contig_arg(x_obj, "x");
  const Pool2d g = pool2d(x.shape, ks, st, pd);
  const DevArray y = new_array({x.shape[0], x.shape[1], g.OH, g.OW});
  if (y.size()) {
    DeviceGuard guard;
    avg_pool2d(x.f(), y.f(), g);
  }
  return y.obj;
}

py::object avg_pool2d_backward_(py::handle gy_obj, py::handle shape_obj, py::handle ks, py::handle st,
                                py::handle pd) {
  const DevArray gy = contig_arg(gy_obj, "grad_y");
  const std::vector<index_t> in = shape_arg(shape_obj);
  const Pool2d g = pool2d(in, ks, st, pd);
  const std::vector<index_t> want{in[0], in[1], g.OH, g.OW};
  if (gy.shape != want)
    throw py::value_error("grad_y has shape " + shape_str(gy.shape) + ", expected " + shape_str(want));
  const DevArray gx = new_array(in);
  if (gx.size()) {
    DeviceGuard guard;
    avg_pool2d_backward(gy.f(), gx.f(), g);
  }
  return gx.obj;
}

}  // namespace

void bind_pool(py::module_& m) {
  const py::arg_v stride = py::arg("stride") = py::none(), padding = py::arg("padding") = 0;
  m.def("max_pool2d", &max_pool2d_, py::arg("x"), py::arg("kernel_size"), stride, padding);
  m.def("max_pool2d_backward", &max_pool2d_backward_, py::arg("grad_y"), py::arg("indices"), py::arg("input_shape"));
  m.def("avg_pool2d", &avg_pool2d_, py::arg("x"), py::arg("kernel_size"), stride, padding);
  m.def("avg_pool2d_backward", &avg_pool2d_backward_, py::arg("grad_y"), py::arg("input_shape"), py::arg("kernel_size"),
        stride, padding);
}

}  // namespace lamina::cuda::bind
