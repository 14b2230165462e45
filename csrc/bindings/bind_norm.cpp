// bind_norm.cpp: batch_norm and batch_norm_backward (x (N, C, *) float32, per-channel arrays (C,)).
// Validates every argument (naming it), allocates the results, releases the GIL around the kernel.
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "bind_eltwise.h"
#include "lamina/norm.h"

namespace lamina::bind {
namespace {

bool flag_arg(py::handle obj, const char* name) {
  if (py::isinstance<py::bool_>(obj)) return obj.cast<bool>();
  if (py::hasattr(obj, "dtype") && py::str(obj.attr("dtype").attr("kind")).cast<std::string>() == "b" &&
      py::hasattr(obj, "ndim") && obj.attr("ndim").cast<int>() == 0)
    return PyObject_IsTrue(obj.ptr()) == 1;
  type_error(std::string(name) + " must be a bool, got " + std::string(py::str(py::type::of(obj).attr("__name__"))));
}

// x (N, C, *): at least 2-D, C-contiguous float32; (N, C, S) with S the product of the rest.
struct Channels {
  View x;
  index_t N = 0, C = 0, S = 1;
};

Channels channels_arg(py::handle obj, const char* name) {
  Channels ch;
  ch.x = contig_arg(obj, name);
  if (ch.x.ndim < 2) value_error(std::string(name) + " must have at least 2 dimensions (N, C, ...), got shape " +
                                 ch.x.shape_str());
  ch.N = ch.x.shape[0];
  ch.C = ch.x.shape[1];
  for (int d = 2; d < ch.x.ndim; ++d) ch.S *= ch.x.shape[d];
  return ch;
}

// None, or a (C,) float32 contiguous array.
View per_channel_arg(py::handle obj, const char* name, index_t C, bool writeable = false) {
  if (obj.is_none()) return View{};
  View v = contig_arg(obj, name, 1, writeable);
  if (v.shape[0] != C)
    value_error(std::string(name) + " must have shape (" + std::to_string(C) + ",) (one value per channel), got " +
                v.shape_str());
  return v;
}

float* ptr(const View& v) { return v.data ? v.f() : nullptr; }

py::tuple batch_norm(py::handle x_obj, py::handle rm_obj, py::handle rv_obj, py::handle w_obj, py::handle b_obj,
                     py::handle training_obj, py::handle momentum_obj, py::handle eps_obj, py::handle out_obj) {
  Channels ch = channels_arg(x_obj, "x");
  const bool training = flag_arg(training_obj, "training");
  View rm = per_channel_arg(rm_obj, "running_mean", ch.C, training);
  View rv = per_channel_arg(rv_obj, "running_var", ch.C, training);
  View w = per_channel_arg(w_obj, "weight", ch.C);
  View b = per_channel_arg(b_obj, "bias", ch.C);
  if (rm_obj.is_none() != rv_obj.is_none())
    value_error("running_mean and running_var must be given together (or both None)");
  if (!training && rm_obj.is_none())
    value_error("running_mean and running_var are required when training=False");
  const double momentum = real_arg(momentum_obj, "momentum");
  if (!(momentum >= 0.0 && momentum <= 1.0))
    value_error("momentum must be in [0, 1], got " + std::string(py::repr(momentum_obj)));
  const double eps = real_arg(eps_obj, "eps");
  if (!(eps >= 0.0 && std::isfinite(eps))) value_error("eps must be finite and >= 0, got " + std::string(py::repr(eps_obj)));
  if (training && ch.C > 0 && ch.N * ch.S < 2)
    value_error("training needs more than 1 value per channel, got x of shape " + ch.x.shape_str());
  if (training && rm.data) {
    const std::vector<std::pair<const View*, const char*>> ins{{&ch.x, "x"}, {&w, "weight"}, {&b, "bias"}};
    for (const auto& [v, n] : ins) {
      if (v->data && (overlaps(rm, *v) || overlaps(rv, *v)))
        value_error(std::string("running_mean / running_var overlap ") + n + "; pass separate arrays");
    }
    if (overlaps(rm, rv)) value_error("running_mean and running_var overlap; pass separate arrays");
  }
  std::vector<const View*> inputs{&ch.x};  // an absent (None) array has no memory to overlap
  for (const View* v : {&w, &b, &rm, &rv})
    if (v->data) inputs.push_back(v);
  Output out(out_obj, ch.x.shape, inputs);
  py::array_t<float> mean = new_f32({ch.C}), invstd = new_f32({ch.C});
  float* y = out.data();
  float *pm = mean.mutable_data(), *pi = invstd.mutable_data();
  {
    py::gil_scoped_release nogil;
    cpu::batch_norm(ch.x.f(), ptr(w), ptr(b), ptr(rm), ptr(rv), y, pm, pi, ch.N, ch.C, ch.S, training, momentum,
                    eps);
    out.finish();
  }
  return py::make_tuple(out.result(), mean, invstd);
}

py::tuple batch_norm_backward(py::handle gy_obj, py::handle x_obj, py::handle w_obj, py::handle mean_obj,
                              py::handle invstd_obj, py::handle training_obj) {
  Channels ch = channels_arg(x_obj, "x");
  View gy = contig_arg(gy_obj, "grad_y");
  if (gy.shape != ch.x.shape)
    value_error("grad_y must have x's shape " + ch.x.shape_str() + ", got " + gy.shape_str());
  View w = per_channel_arg(w_obj, "weight", ch.C);
  if (mean_obj.is_none() || invstd_obj.is_none())
    value_error("mean and invstd (the forward's statistics) are required");
  View mean = per_channel_arg(mean_obj, "mean", ch.C);
  View invstd = per_channel_arg(invstd_obj, "invstd", ch.C);
  const bool training = flag_arg(training_obj, "training");
  py::array_t<float> gx = new_f32(ch.x.shape), gw = new_f32({ch.C}), gb = new_f32({ch.C});
  float *pgx = gx.mutable_data(), *pgw = gw.mutable_data(), *pgb = gb.mutable_data();
  {
    py::gil_scoped_release nogil;
    cpu::batch_norm_backward(gy.f(), ch.x.f(), ptr(w), mean.f(), invstd.f(), pgx, pgw, pgb, ch.N, ch.C, ch.S,
                             training);
  }
  return py::make_tuple(gx, gw, gb);
}

}  // namespace

LAMINA_BINDINGS(bind_norm) {
  m.def("batch_norm", &batch_norm, py::arg("x"), py::arg("running_mean") = py::none(),
        py::arg("running_var") = py::none(), py::arg("weight") = py::none(), py::arg("bias") = py::none(),
        py::arg("training") = false, py::arg("momentum") = 0.1, py::arg("eps") = 1e-5, py::arg("out") = py::none(),
        "x (N, C, *) float32 -> (y like x, mean (C,), invstd (C,)): batch normalisation over every axis but 1, "
        "with torch.nn.functional.batch_norm's semantics. training: batch mean and biased variance "
        "(numerically stable), running_mean / running_var (C,) updated in place when given (the running "
        "variance unbiased); evaluation: the running statistics (required). weight / bias (C,) or None. "
        "momentum in [0, 1], eps >= 0. mean and invstd = 1/sqrt(var + eps) are what y was normalised with "
        "(batch_norm_backward takes them). out: where y goes.");
  m.def("batch_norm_backward", &batch_norm_backward, py::arg("grad_y"), py::arg("x"), py::arg("weight"),
        py::arg("mean"), py::arg("invstd"), py::arg("training") = false,
        "(grad_x like x, grad_weight (C,), grad_bias (C,)) of batch_norm, from grad_y (x's shape), x, weight "
        "(None: ones) and the forward's mean and invstd; training as in that forward.");
}

}  // namespace lamina::bind
