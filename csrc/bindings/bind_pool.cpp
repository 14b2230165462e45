// bind_pool.cpp: max_pool2d, avg_pool2d and their backward passes (NCHW, float32).
// Validates the geometry so that every window holds at least one input cell and every
// index the kernels touch is inside its plane.
#include <cstdint>
#include <string>
#include <utility>

#include "bind_eltwise.h"
#include "lamina/checked.h"
#include "lamina/pool.h"

namespace lamina::bind {
namespace {

std::string type_name(py::handle h) { return std::string(py::str(py::type::of(h).attr("__name__"))); }

std::string pair_str(index_t a, index_t b) {
  return "(" + std::to_string(a) + ", " + std::to_string(b) + ")";
}

// The full geometry for an input of (N, C, H, W); raises on anything out of range.
Pool2d geometry(index_t N, index_t C, index_t H, index_t W, py::handle ks, py::handle st, py::handle pd,
                const char* input_name) {
  auto [kh, kw] = int_pair_arg(ks, "kernel_size");
  auto [sh, sw] = st.is_none() ? std::make_pair(kh, kw) : int_pair_arg(st, "stride");
  auto [ph, pw] = int_pair_arg(pd, "padding");
  if (kh < 1 || kw < 1) value_error("kernel_size must be >= 1, got " + pair_str(kh, kw));
  if (sh < 1 || sw < 1) value_error("stride must be >= 1, got " + pair_str(sh, sw));
  if (ph < 0 || pw < 0) value_error("padding must be >= 0, got " + pair_str(ph, pw));
  if (ph > kh / 2 || pw > kw / 2)
    value_error("padding " + pair_str(ph, pw) + " must be at most half of kernel_size " + pair_str(kh, kw) +
                " (as in PyTorch), so that every window holds an input cell");
  if (H < 1 || W < 1)
    value_error(std::string(input_name) + " must have nonzero height and width, got H=" + std::to_string(H) +
                ", W=" + std::to_string(W));
  // The padded extents, in checked arithmetic: padding (0, 2**61) must not wrap (checked.h).
  const index_t hp = checked_add(H, checked_mul(2, ph, "padding"), "padding");
  const index_t wp = checked_add(W, checked_mul(2, pw, "padding"), "padding");
  if (hp < kh || wp < kw)
    value_error("kernel_size " + pair_str(kh, kw) + " is larger than the padded input " +
                pair_str(hp, wp) + " (" + input_name + " H, W = " + pair_str(H, W) +
                ", padding " + pair_str(ph, pw) + ")");
  Pool2d g;
  g.planes = N * C;
  g.H = H;
  g.W = W;
  g.kh = kh;
  g.kw = kw;
  g.sh = sh;
  g.sw = sw;
  g.ph = ph;
  g.pw = pw;
  g.OH = (hp - kh) / sh + 1;  // <= H + 1, as 2 p <= k
  g.OW = (wp - kw) / sw + 1;
  // y (float32) and indices (int64) of (N, C, OH, OW) must be allocatable.
  checked_nbytes({N, C, g.OH, g.OW}, sizeof(std::int64_t), "kernel_size");
  return g;
}

std::vector<index_t> input_shape_arg(py::handle obj) {
  if (!py::isinstance<py::sequence>(obj) || py::isinstance<py::str>(obj))
    type_error("input_shape must be a sequence of 4 ints (N, C, H, W), got " + type_name(obj));
  py::sequence s = py::reinterpret_borrow<py::sequence>(obj);
  if (s.size() != 4)
    value_error("input_shape must have 4 entries (N, C, H, W), got " + std::to_string(s.size()));
  std::vector<index_t> shape;
  for (std::size_t i = 0; i < 4; ++i) {
    const index_t v = int64_arg(s[i], "input_shape");
    if (v < 0) value_error("input_shape has a negative entry: " + std::string(py::repr(obj)));
    shape.push_back(v);
  }
  // grad_x is allocated with this shape, and H * W bounds the indices (checked.h).
  checked_nbytes(shape, sizeof(float), "input_shape");
  return shape;
}

py::tuple max_pool2d(py::handle x_obj, py::handle ks, py::handle st, py::handle pd) {
  View x = contig_arg(x_obj, "x", 4);
  Pool2d g = geometry(x.shape[0], x.shape[1], x.shape[2], x.shape[3], ks, st, pd, "x");
  std::vector<py::ssize_t> oshape{x.shape[0], x.shape[1], g.OH, g.OW};
  py::array_t<float> y(oshape);
  py::array_t<std::int64_t> idx(oshape);
  float* yp = y.mutable_data();
  std::int64_t* ip = idx.mutable_data();
  {
    py::gil_scoped_release nogil;
    cpu::max_pool2d(x.f(), yp, ip, g);
  }
  return py::make_tuple(y, idx);
}

py::array max_pool2d_backward(py::handle gy_obj, py::handle idx_obj, py::handle shape_obj) {
  View gy = contig_arg(gy_obj, "grad_y", 4);
  View idx = i64_arg(idx_obj, "indices", 4);
  if (idx.shape != gy.shape)
    value_error("indices has shape " + idx.shape_str() + " but grad_y has shape " + gy.shape_str());
  std::vector<index_t> in = input_shape_arg(shape_obj);
  if (in[0] != gy.shape[0] || in[1] != gy.shape[1])
    value_error("input_shape " + shape_str(in) + " does not match grad_y " + gy.shape_str() +
                " in N and C");
  if (in[2] < 1 || in[3] < 1) value_error("input_shape must have nonzero height and width, got " + shape_str(in));
  Pool2d g{in[0] * in[1], in[2], in[3], gy.shape[2], gy.shape[3], 1, 1, 1, 1, 0, 0};
  py::array_t<float> gx = new_f32(in);
  float* gxp = gx.mutable_data();
  const auto* ip = reinterpret_cast<const std::int64_t*>(idx.data);
  index_t bad;
  {
    py::gil_scoped_release nogil;
    bad = cpu::max_pool2d_backward(gy.f(), ip, gxp, g);
  }
  if (bad >= 0) {
    const index_t OW = gy.shape[3], OH = gy.shape[2], C = gy.shape[1];
    const index_t ow = bad % OW, oh = bad / OW % OH, c = bad / (OW * OH) % C, n = bad / (OW * OH * C);
    value_error("indices[" + std::to_string(n) + ", " + std::to_string(c) + ", " + std::to_string(oh) +
                ", " + std::to_string(ow) + "] = " + std::to_string(ip[bad]) + " is out of range [0, " +
                std::to_string(in[2] * in[3]) + ") for planes of H*W = " + std::to_string(in[2]) + "*" +
                std::to_string(in[3]));
  }
  return std::move(gx);
}

py::array avg_pool2d(py::handle x_obj, py::handle ks, py::handle st, py::handle pd) {
  View x = contig_arg(x_obj, "x", 4);
  Pool2d g = geometry(x.shape[0], x.shape[1], x.shape[2], x.shape[3], ks, st, pd, "x");
  py::array_t<float> y = new_f32({x.shape[0], x.shape[1], g.OH, g.OW});
  float* yp = y.mutable_data();
  {
    py::gil_scoped_release nogil;
    cpu::avg_pool2d(x.f(), yp, g);
  }
  return std::move(y);
}

py::array avg_pool2d_backward(py::handle gy_obj, py::handle shape_obj, py::handle ks, py::handle st,
                              py::handle pd) {
  View gy = contig_arg(gy_obj, "grad_y", 4);
  std::vector<index_t> in = input_shape_arg(shape_obj);
  Pool2d g = geometry(in[0], in[1], in[2], in[3], ks, st, pd, "input_shape");
  const std::vector<index_t> want{in[0], in[1], g.OH, g.OW};
  if (gy.shape != want)
    value_error("grad_y has shape " + gy.shape_str() + " but pooling input_shape " + shape_str(in) +
                " gives an output of shape " + shape_str(want));
  py::array_t<float> gx = new_f32(in);
  float* gxp = gx.mutable_data();
  {
    py::gil_scoped_release nogil;
    cpu::avg_pool2d_backward(gy.f(), gxp, g);
  }
  return std::move(gx);
}

}  // namespace

LAMINA_BINDINGS(bind_pool) {
  m.def("max_pool2d", &max_pool2d, py::arg("x"), py::arg("kernel_size"), py::arg("stride") = py::none(),
        py::arg("padding") = 0,
        "x (N, C, H, W) float32 -> (y, indices), both (N, C, OH, OW), OH = (H + 2p - k) // s + 1. "
        "kernel_size, stride (default kernel_size), padding: int or pair; padding counts as -inf and "
        "must be at most kernel_size // 2. indices (int64) are flat positions ih * W + iw within "
        "each H*W input plane, as PyTorch returns them; ties go to the first maximum in row-major "
        "window order.");
  m.def("max_pool2d_backward", &max_pool2d_backward, py::arg("grad_y"), py::arg("indices"),
        py::arg("input_shape"),
        "grad_y, indices (N, C, OH, OW) -> grad_x of input_shape (N, C, H, W): each grad_y is "
        "added to the input cell its index names. Indices outside [0, H*W) are a ValueError.");
  m.def("avg_pool2d", &avg_pool2d, py::arg("x"), py::arg("kernel_size"), py::arg("stride") = py::none(),
        py::arg("padding") = 0,
        "x (N, C, H, W) float32 -> y (N, C, OH, OW): window sums divided by kernel_h * kernel_w "
        "(padding counted in the divisor, PyTorch's count_include_pad=True).");
  m.def("avg_pool2d_backward", &avg_pool2d_backward, py::arg("grad_y"), py::arg("input_shape"),
        py::arg("kernel_size"), py::arg("stride") = py::none(), py::arg("padding") = 0,
        "grad_y (N, C, OH, OW) -> grad_x of input_shape: grad_y / (kernel_h * kernel_w) spread over "
        "each window's input cells.");
}

}  // namespace lamina::bind
