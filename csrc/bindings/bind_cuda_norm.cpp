// bind_cuda_norm.cpp: lamina._cuda's batch_norm and batch_norm_backward (lamina/cuda/norm.h) with
// the reference's signatures and errors: float32 lamina.cuda arrays, x (N, C, *), the per-channel
// arrays (C,) or None, validated here (TypeError / ValueError naming the argument); strided
// inputs copied; running_mean / running_var updated in place (a strided one through a
// contiguous copy written back); y to a new array or to `out`.
#include <cmath>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "bind_cuda_array_arg.h"
#include "bind_cuda_common.h"
#include "lamina/cuda/norm.h"

namespace lamina::cuda::bind {

namespace {

std::string type_name(py::handle h) { return std::string(py::str(py::type::of(h).attr("__name__"))); }

bool is_numpy_bool(py::handle obj) { return py::isinstance(obj, py::module_::import("numpy").attr("bool_")); }

bool flag_arg(py::handle obj, const char* name) {
  if (py::isinstance<py::bool_>(obj) || is_numpy_bool(obj)) return PyObject_IsTrue(obj.ptr()) == 1;
  throw py::type_error(std::string(name) + " must be a bool, got " + type_name(obj));
}

// A real number (a Python or NumPy int or float, not a bool), as the reference checks it.
double real_number(py::handle obj, const char* name) {
  const py::module_ np = py::module_::import("numpy");
  const bool real = !py::isinstance<py::bool_>(obj) && !is_numpy_bool(obj) &&
                    (py::isinstance<py::float_>(obj) || py::isinstance<py::int_>(obj) ||
                     py::isinstance(obj, np.attr("floating")) || py::isinstance(obj, np.attr("integer")));
  if (!real) throw py::type_error(std::string(name) + " must be a real number, got " + type_name(obj));
  return py::float_(py::reinterpret_borrow<py::object>(obj)).cast<double>();
}

// x (N, C, *) as (N, C, S).
struct Channels {
  DevArray x;
  index_t N = 0, C = 0, S = 1;
};

Channels channels_arg(py::handle obj) {
  Channels ch;
  ch.x = contig_arg(obj, "x");
  if (ch.x.shape.size() < 2)
    throw py::value_error("x must have at least 2 dimensions (N, C, ...), got shape " + shape_str(ch.x.shape));
  ch.N = ch.x.shape[0];
  ch.C = ch.x.shape[1];
  for (std::size_t d = 2; d < ch.x.shape.size(); ++d) ch.S *= ch.x.shape[d];
  return ch;
}

// None (an empty DevArray, ptr 0), or a float32 array of shape (C,), not copied.
DevArray per_channel(py::handle obj, const char* name, index_t C) {
  if (obj.is_none()) return DevArray{};
  DevArray a = array_arg(obj, name);
  if (a.shape != std::vector<index_t>{C})
    throw py::value_error(std::string(name) + " must have shape (" + std::to_string(C) +
                          ",) (one value per channel), got " + shape_str(a.shape));
  return a;
}

// The same, C-contiguous (an input: a strided one copied).
DevArray per_channel_input(py::handle obj, const char* name, index_t C) {
  DevArray a = per_channel(obj, name, C);
  return a.ptr && !a.contiguous() ? contig_arg(obj, name) : a;
}

float* ptr_or_null(const DevArray& a) { return a.ptr ? a.f() : nullptr; }

py::tuple batch_norm(py::handle x_obj, py::handle rm_obj, py::handle rv_obj, py::handle w_obj, py::handle b_obj,
                     py::handle training_obj, py::handle momentum_obj, py::handle eps_obj, py::handle out_obj) {
  const Channels ch = channels_arg(x_obj);
  DevArray rm = per_channel(rm_obj, "running_mean", ch.C), rv = per_channel(rv_obj, "running_var", ch.C);
  const DevArray w = per_channel_input(w_obj, "weight", ch.C), b = per_channel_input(b_obj, "bias", ch.C);
  const bool training = flag_arg(training_obj, "training");
  if (rm_obj.is_none() != rv_obj.is_none())
    throw py::value_error("running_mean and running_var must be given together (or both None)");
  if (!training && rm_obj.is_none())
    throw py::value_error("running_mean and running_var are required when training=False");
  const double momentum = real_number(momentum_obj, "momentum");
  if (!(momentum >= 0.0 && momentum <= 1.0))
    throw py::value_error("momentum must be in [0, 1], got " + std::string(py::repr(momentum_obj)));
  const double eps = real_number(eps_obj, "eps");
  if (!(eps >= 0.0 && std::isfinite(eps)))
    throw py::value_error("eps must be finite and >= 0, got " + std::string(py::repr(eps_obj)));
  if (training && ch.C > 0 && ch.N * ch.S < 2)
    throw py::value_error("training needs more than 1 value per channel, got x of shape " + shape_str(ch.x.shape));
  // Updated in place: they must not overlap what the kernel reads; strided ones go through a copy.
  DevArray rm_target = rm, rv_target = rv;
  if (training && rm.ptr) {
    for (const auto& [a, n] : {std::pair<const DevArray*, const char*>{&ch.x, "x"}, {&w, "weight"}, {&b, "bias"}})
      if (a->ptr && (overlaps(rm, *a) || overlaps(rv, *a)))
        throw py::value_error(std::string("running_mean / running_var overlap ") + n + "; pass separate arrays");
    if (overlaps(rm, rv)) throw py::value_error("running_mean and running_var overlap; pass separate arrays");
    if (!rm.contiguous()) rm_target = contig_arg(rm_obj, "running_mean");
    if (!rv.contiguous()) rv_target = contig_arg(rv_obj, "running_var");
  } else {
    if (rm.ptr && !rm.contiguous()) rm_target = contig_arg(rm_obj, "running_mean");
    if (rv.ptr && !rv.contiguous()) rv_target = contig_arg(rv_obj, "running_var");
  }
  std::vector<const DevArray*> inputs{&ch.x};
  for (const DevArray* a : std::initializer_list<const DevArray*>{&w, &b, &rm, &rv})
    if (a->ptr) inputs.push_back(a);
  DevOutput out(out_obj, ch.x.shape, inputs, /*elementwise=*/true);
  const DevArray mean = new_array({ch.C}), invstd = new_array({ch.C});
  {
    DeviceGuard guard;
    lamina::cuda::batch_norm(ch.x.f(), ptr_or_null(w), ptr_or_null(b), ptr_or_null(rm_target),
                             ptr_or_null(rv_target), out.data(), mean.f(), invstd.f(), ch.N, ch.C, ch.S, training,
                             momentum, eps);
  }
  if (training && rm.ptr) {
    if (rm_target.ptr != rm.ptr) copy_into(rm_target, rm);
    if (rv_target.ptr != rv.ptr) copy_into(rv_target, rv);
  }
  return py::make_tuple(out.result(), mean.obj, invstd.obj);
}

py::tuple batch_norm_backward(py::handle gy_obj, py::handle x_obj, py::handle w_obj, py::handle mean_obj,
                              py::handle invstd_obj, py::handle training_obj) {
  const Channels ch = channels_arg(x_obj);
  const DevArray gy = contig_arg(gy_obj, "grad_y");
  if (gy.shape != ch.x.shape)
    throw py::value_error("grad_y must have x's shape " + shape_str(ch.x.shape) + ", got " + shape_str(gy.shape));
  const DevArray w = per_channel_input(w_obj, "weight", ch.C);
  const DevArray mean = per_channel_input(mean_obj, "mean", ch.C);
  const DevArray invstd = per_channel_input(invstd_obj, "invstd", ch.C);
  if (mean_obj.is_none() || invstd_obj.is_none())
    throw py::value_error("mean and invstd (the forward's statistics) are required");
  const bool training = flag_arg(training_obj, "training");
  const DevArray gx = new_array(ch.x.shape), gw = new_array({ch.C}), gb = new_array({ch.C});
  {
    DeviceGuard guard;
    lamina::cuda::batch_norm_backward(gy.f(), ch.x.f(), ptr_or_null(w), mean.f(), invstd.f(), gx.f(), gw.f(), gb.f(),
                                      ch.N, ch.C, ch.S, training);
  }
  return py::make_tuple(gx.obj, gw.obj, gb.obj);
}

}  // namespace

void bind_norm(py::module_& m) {
  m.def("batch_norm", &batch_norm, py::arg("x"), py::arg("running_mean") = py::none(),
        py::arg("running_var") = py::none(), py::arg("weight") = py::none(), py::arg("bias") = py::none(),
        py::arg("training") = false, py::arg("momentum") = 0.1, py::arg("eps") = 1e-5, py::arg("out") = py::none(),
        "x (N, C, *) -> (y like x, mean (C,), invstd (C,)): lamina.reference.batch_norm on the device.");
  m.def("batch_norm_backward", &batch_norm_backward, py::arg("grad_y"), py::arg("x"), py::arg("weight"),
        py::arg("mean"), py::arg("invstd"), py::arg("training") = false,
        "(grad_x, grad_weight, grad_bias) of batch_norm: lamina.reference.batch_norm_backward on the device.");
}

}  // namespace lamina::cuda::bind
