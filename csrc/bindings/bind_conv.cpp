// bind_conv.cpp: conv2d and conv2d_backward. Validates every argument (naming it), computes
// the output size, allocates the results and releases the GIL around the kernel.
#include <algorithm>
#include <string>
#include <utility>

#include "bind_common.h"
#include "lamina/checked.h"
#include "lamina/conv.h"

namespace lamina::bind {
namespace {

std::string pair_str(index_t a, index_t b) {
  return "(" + std::to_string(a) + ", " + std::to_string(b) + ")";
}

// Checks x (N, C, H, W) and w (O, C, kH, kW) and the geometry; fills everything in s.
Conv2dShape conv_shape(const View& xv, const View& wv, py::handle stride, py::handle padding,
                       py::handle dilation) {
  Conv2dShape s{};
  s.N = xv.shape[0], s.C = xv.shape[1], s.H = xv.shape[2], s.W = xv.shape[3];
  s.O = wv.shape[0], s.kH = wv.shape[2], s.kW = wv.shape[3];
  if (wv.shape[1] != s.C)
    value_error("conv2d: w has " + std::to_string(wv.shape[1]) + " input channels but x has " +
                std::to_string(s.C) + " (x shape " + xv.shape_str() + ", w shape " + wv.shape_str() +
                ")");
  if (s.kH < 1 || s.kW < 1)
    value_error("conv2d: w has an empty kernel (w shape " + wv.shape_str() + ")");
  std::tie(s.sh, s.sw) = int_pair_arg(stride, "stride");
  std::tie(s.ph, s.pw) = int_pair_arg(padding, "padding");
  std::tie(s.dh, s.dw) = int_pair_arg(dilation, "dilation");
  if (s.sh <= 0 || s.sw <= 0) value_error("stride must be positive, got " + pair_str(s.sh, s.sw));
  if (s.dh <= 0 || s.dw <= 0) value_error("dilation must be positive, got " + pair_str(s.dh, s.dw));
  if (s.ph < 0 || s.pw < 0) value_error("padding must be non-negative, got " + pair_str(s.ph, s.pw));
  // Dilated kernel extent dh*(kH-1)+1 against the padded input, compared without forming
  // the product (it could overflow for absurd dilations).
  const index_t lim = index_t(1) << 40;
  if (s.sh > lim || s.sw > lim || s.dh > lim || s.dw > lim || s.ph > lim || s.pw > lim)
    value_error("stride, padding and dilation must be below 2**40");
  const index_t hp = s.H + 2 * s.ph, wp = s.W + 2 * s.pw;
  auto too_big = [](index_t d, index_t k, index_t padded) {
    return padded < 1 || (k > 1 && d > (padded - 1) / (k - 1));
  };
  if (too_big(s.dh, s.kH, hp) || too_big(s.dw, s.kW, wp)) {
    auto ext = [](index_t d, index_t k) {  // for the message only
      return k > 1 && d > (index_t(1) << 40) / (k - 1) ? std::string("> 2**40")
                                                       : std::to_string(d * (k - 1) + 1);
    };
    value_error("conv2d: kernel larger than padded input: kernel extent (" + ext(s.dh, s.kH) +
                ", " + ext(s.dw, s.kW) + ") (w shape " + wv.shape_str() +
                ", dilation " + pair_str(s.dh, s.dw) + ") vs padded input " + pair_str(hp, wp) +
                " (x shape " + xv.shape_str() + ", padding " + pair_str(s.ph, s.pw) + ")");
  }
  const index_t eh = s.dh * (s.kH - 1) + 1, ew = s.dw * (s.kW - 1) + 1;
  s.OH = (hp - eh) / s.sh + 1;
  s.OW = (wp - ew) / s.sw + 1;
  // y (N, O, OH, OW) must be allocatable, and the kernels form OH * OW and C * kH * kW * OW
  // (an image's column matrix, tiled): padding (2**39, 2**39) on a 1x1 input asks for
  // (2**40 + 1)**2 outputs per plane (checked.h).
  index_t cols, bytes;
  if (!mul_ok(s.OH, s.OW, cols) || !mul_ok(cols, s.C * s.kH * s.kW, cols) ||
      !nbytes_ok({s.N, s.O, s.OH, s.OW}, sizeof(float), bytes))
    value_error("conv2d: padding " + pair_str(s.ph, s.pw) + " and stride " + pair_str(s.sh, s.sw) +
                " give an output of " + pair_str(s.OH, s.OW) + " per plane (x shape " + xv.shape_str() +
                ", w shape " + wv.shape_str() + "): too large to allocate (the sizes overflow 64 bits)");
  return s;
}

py::array conv2d(py::handle x_obj, py::handle w_obj, py::handle b_obj, py::handle stride,
                 py::handle padding, py::handle dilation, py::handle act, py::handle out_obj) {
  View xv = f32_contig_arg(x_obj, "x", 4), wv = f32_contig_arg(w_obj, "w", 4);
  const Conv2dShape s = conv_shape(xv, wv, stride, padding, dilation);
  View bv;
  const float* bias = nullptr;
  if (!b_obj.is_none()) {
    bv = f32_contig_arg(b_obj, "b", 1);
    if (bv.shape[0] != s.O)
      value_error("conv2d: b has shape " + bv.shape_str() + ", expected (" + std::to_string(s.O) +
                  ",) for w of shape " + wv.shape_str());
    bias = bv.f();
  }
  const bool relu = relu_activation(act);
  std::vector<const View*> inputs{&xv, &wv};
  if (bias) inputs.push_back(&bv);
  Output out(out_obj, {s.N, s.O, s.OH, s.OW}, inputs);
  {
    py::gil_scoped_release nogil;
    cpu::conv2d(s, xv.f(), wv.f(), bias, relu, out.data());
    out.finish();
  }
  return out.result();
}

py::tuple conv2d_backward(py::handle x_obj, py::handle w_obj, py::handle gy_obj,
                          py::handle stride, py::handle padding, py::handle dilation,
                          bool compute_grad_x) {
  View xv = f32_contig_arg(x_obj, "x", 4), wv = f32_contig_arg(w_obj, "w", 4);
  const Conv2dShape s = conv_shape(xv, wv, stride, padding, dilation);
  View gv = f32_contig_arg(gy_obj, "grad_y", 4);
  const std::vector<index_t> yshape{s.N, s.O, s.OH, s.OW};
  if (gv.shape != yshape)
    value_error("conv2d_backward: grad_y has shape " + gv.shape_str() + ", expected " +
                shape_str(yshape) + " (the output shape for x " + xv.shape_str() + " and w " +
                wv.shape_str() + ")");
  py::array_t<float> gw = new_f32(wv.shape), gb = new_f32({s.O});
  py::object gx_obj = py::none();
  float* gx = nullptr;
  if (compute_grad_x) {
    py::array_t<float> gxa = new_f32(xv.shape);
    gx = gxa.mutable_data();
    gx_obj = std::move(gxa);
  }
  {
    py::gil_scoped_release nogil;
    cpu::conv2d_backward(s, xv.f(), wv.f(), gv.f(), gx, gw.mutable_data(), gb.mutable_data());
  }
  return py::make_tuple(gx_obj, gw, gb);
}

py::tuple conv2d_backward_pooled(py::handle x_obj, py::handle w_obj, py::handle gp_obj, py::handle idx_obj,
                                 py::handle stride, py::handle padding, py::handle dilation) {
  View xv = f32_contig_arg(x_obj, "x", 4), wv = f32_contig_arg(w_obj, "w", 4);
  const Conv2dShape s = conv_shape(xv, wv, stride, padding, dilation);
  View gv = f32_contig_arg(gp_obj, "grad_pooled", 4);
  View iv = i64_arg(idx_obj, "indices", 4);
  if (gv.shape[0] != s.N || gv.shape[1] != s.O)
    value_error("conv2d_backward_pooled: grad_pooled has shape " + gv.shape_str() + ", expected (" +
                std::to_string(s.N) + ", " + std::to_string(s.O) + ", PH, PW) for x " + xv.shape_str() +
                " and w " + wv.shape_str());
  if (iv.shape != gv.shape)
    value_error("conv2d_backward_pooled: indices has shape " + iv.shape_str() + " but grad_pooled has shape " +
                gv.shape_str());
  py::array_t<float> gw = new_f32(wv.shape), gb = new_f32({s.O});
  const auto* ip = reinterpret_cast<const std::int64_t*>(iv.data);
  const index_t P = gv.shape[2] * gv.shape[3];
  index_t bad;
  {
    py::gil_scoped_release nogil;
    bad = cpu::conv2d_backward_pooled(s, P, xv.f(), gv.f(), ip, gw.mutable_data(), gb.mutable_data());
  }
  if (bad >= 0) {
    const index_t PW = gv.shape[3], PH = gv.shape[2], O = s.O;
    value_error("conv2d_backward_pooled: indices[" + std::to_string(bad / (PW * PH * O)) + ", " +
                std::to_string(bad / (PW * PH) % O) + ", " + std::to_string(bad / PW % PH) + ", " +
                std::to_string(bad % PW) + "] = " + std::to_string(ip[bad]) + " is out of range [0, " +
                std::to_string(s.OH * s.OW) + ") for conv output planes of " + std::to_string(s.OH) + "*" +
                std::to_string(s.OW));
  }
  return py::make_tuple(gw, gb);
}

int tile_arg(py::handle m) {
  if (!py::isinstance<py::int_>(m) || py::isinstance<py::bool_>(m) || (m.cast<long>() != 2 && m.cast<long>() != 4))
    value_error("m must be 2 or 4, got " + std::string(py::str(m)));
  return m.cast<int>();
}

// The Winograd geometry of a 3x3 stride-1 convolution of x with `padding`.
Conv2dShape winograd_shape(const View& xv, index_t O, py::handle padding) {
  Conv2dShape s{};
  s.N = xv.shape[0], s.C = xv.shape[1], s.H = xv.shape[2], s.W = xv.shape[3];
  s.O = O, s.kH = s.kW = 3, s.sh = s.sw = s.dh = s.dw = 1;
  std::tie(s.ph, s.pw) = int_pair_arg(padding, "padding");
  if (s.ph < 0 || s.pw < 0 || s.ph > 64 || s.pw > 64) value_error("padding must be in [0, 64]");
  s.OH = s.H + 2 * s.ph - 2, s.OW = s.W + 2 * s.pw - 2;
  if (s.OH < 1 || s.OW < 1) value_error("the 3x3 kernel is larger than the padded input " + xv.shape_str());
  return s;
}

}  // namespace

LAMINA_BINDINGS(bind_conv) {
  m.def("conv2d", &conv2d, py::arg("x"), py::arg("w"), py::arg("b") = py::none(),
        py::arg("stride") = 1, py::arg("padding") = 0, py::arg("dilation") = 1,
        py::arg("activation") = py::none(), py::arg("out") = py::none(),
        "2-D convolution (cross-correlation, as torch.nn.functional.conv2d): x (N, C, H, W), "
        "w (O, C, kH, kW), b (O,) or None -> y (N, O, OH, OW). stride / padding / dilation: "
        "an int or a pair. activation None or 'relu' (applied in the GEMM's write-back).");
  m.def("conv2d_backward", &conv2d_backward, py::arg("x"), py::arg("w"), py::arg("grad_y"),
        py::arg("stride") = 1, py::arg("padding") = 0, py::arg("dilation") = 1,
        py::arg("compute_grad_x") = true,
        "Gradients of conv2d: (grad_x, grad_w, grad_b) from x, w and grad_y (N, O, OH, OW); "
        "grad_x is None when compute_grad_x is False.");
  m.def("conv2d_backward_pooled", &conv2d_backward_pooled, py::arg("x"), py::arg("w"), py::arg("grad_pooled"),
        py::arg("indices"), py::arg("stride") = 1, py::arg("padding") = 0, py::arg("dilation") = 1,
        "(grad_w, grad_b) of conv2d when its output y went into max_pool2d: grad_pooled and indices "
        "(N, O, PH, PW) as max_pool2d returned them for y (flat positions within each OH x OW plane "
        "of y); equal to conv2d_backward(x, w, max_pool2d_backward(grad_pooled, indices, y.shape), "
        "compute_grad_x=False)[1:] without forming that gradient. Indices outside [0, OH*OW) are a "
        "ValueError.");
  m.def(
      "_conv_grad_w_method",
      [](const std::string& name) {
        static const char* names[] = {"auto", "gemm", "dot"};
        for (int i = 0; i < 3; ++i)
          if (name == names[i]) {
            conv_testing_grad_w_method().store(i);
            return;
          }
        value_error("method must be 'auto', 'gemm' or 'dot', got '" + name + "'");
      },
      py::arg("method"),
      "Testing aid: force how conv2d_backward computes grad_w. Not thread-safe while kernels "
      "run.");
  m.def(
      "_conv_algorithms",
      [](py::handle x, py::handle w, py::handle stride, py::handle padding, py::handle dilation) {
        View xv = f32_contig_arg(x, "x", 4), wv = f32_contig_arg(w, "w", 4);
        const Conv2dShape s = conv_shape(xv, wv, stride, padding, dilation);
        const cpu::ConvAlgorithms a = cpu::conv2d_algorithms(s);
        py::dict d;
        d["forward"] = a.forward;
        d["grad_x"] = a.grad_x;
        d["grad_w"] = a.grad_w;
        return d;
      },
      py::arg("x"), py::arg("w"), py::arg("stride") = 1, py::arg("padding") = 0, py::arg("dilation") = 1,
      "Which algorithm conv2d / conv2d_backward run for these arguments on the active CPU path and "
      "tuning: {'forward', 'grad_x', 'grad_w'}: 'winograd2', 'winograd4', 'direct' or 'gemm'.");
  m.def(
      "_winograd_filter_transform",
      [](py::handle w, py::handle mo, bool flipped) {
        View wv = f32_contig_arg(w, "w", 4);
        if (wv.shape[2] != 3 || wv.shape[3] != 3) value_error("w must be (O, C, 3, 3), got " + wv.shape_str());
        const int m = tile_arg(mo);
        const index_t a = m + 2, O = flipped ? wv.shape[1] : wv.shape[0], C = flipped ? wv.shape[0] : wv.shape[1];
        py::array_t<float> U = new_f32({a * a, O, C});
        float* u = U.mutable_data();
        {
          py::gil_scoped_release nogil;
          cpu::winograd_filter_transform(m, O, C, wv.f(), flipped, u);
        }
        return U;
      },
      py::arg("w"), py::arg("m"), py::arg("flipped") = false,
      "Testing aid: U (a*a, O, C) = G w G^T (lamina.reference.winograd.filter_transform); flipped: w is "
      "(C, O, 3, 3) and the filter w[c, o, ::-1, ::-1] (the input gradient's).");
  m.def(
      "_winograd_input_transform",
      [](py::handle x, py::handle mo, py::handle padding) {
        View xv = f32_contig_arg(x, "x", 4);
        const int m = tile_arg(mo);
        const Conv2dShape s = winograd_shape(xv, 1, padding);
        const index_t a = m + 2, T = s.N * ((s.OH + m - 1) / m) * ((s.OW + m - 1) / m);
        py::array_t<float> V = new_f32({a * a, s.C, T});
        float* v = V.mutable_data();
        {
          py::gil_scoped_release nogil;
          cpu::winograd_input_transform(s, m, xv.f(), v);
        }
        return V;
      },
      py::arg("x"), py::arg("m"), py::arg("padding") = 0,
      "Testing aid: V (a*a, C, tiles) = B^T d B of every tile (lamina.reference.winograd.input_transform).");
  m.def(
      "_winograd_output_transform",
      [](py::handle M, py::handle mo, index_t N, index_t OH, index_t OW, py::handle b, py::handle act) {
        View mv = f32_contig_arg(M, "M", 3);
        const int m = tile_arg(mo);
        const index_t a = m + 2;
        if (N < 1 || OH < 1 || OW < 1) value_error("N, OH and OW must be positive");
        const index_t T = N * ((OH + m - 1) / m) * ((OW + m - 1) / m);
        if (mv.shape[0] != a * a || mv.shape[2] != T)
          value_error("M has shape " + mv.shape_str() + ", expected (" + std::to_string(a * a) + ", O, " +
                      std::to_string(T) + ")");
        Conv2dShape s{};
        s.N = N, s.O = mv.shape[1], s.OH = OH, s.OW = OW, s.C = 1, s.kH = s.kW = 3;
        View bv;
        const float* bias = nullptr;
        if (!b.is_none()) {
          bv = f32_contig_arg(b, "b", 1);
          if (bv.shape[0] != s.O) value_error("b has shape " + bv.shape_str() + ", expected (O,)");
          bias = bv.f();
        }
        const bool relu = relu_activation(act);
        py::array_t<float> y = new_f32({N, s.O, OH, OW});
        float* yp = y.mutable_data();
        {
          py::gil_scoped_release nogil;
          cpu::winograd_output_transform(s, m, mv.f(), bias, relu, yp);
        }
        return y;
      },
      py::arg("M"), py::arg("m"), py::arg("N"), py::arg("OH"), py::arg("OW"), py::arg("b") = py::none(),
      py::arg("activation") = py::none(),
      "Testing aid: y (N, O, OH, OW) = A^T M A (+ b, ReLU) of every tile "
      "(lamina.reference.winograd.output_transform).");
}

}  // namespace lamina::bind
