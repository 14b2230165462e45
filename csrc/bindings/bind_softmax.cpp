// bind_softmax.cpp: softmax, log_softmax, softmax_backward (any axis) and softmax_cross_entropy.
// x is viewed as (outer, K, inner) around the axis; nothing is transposed or copied.
#include <cmath>
#include <string>

#include "bind_eltwise.h"
#include "lamina/softmax.h"

namespace lamina::bind {
namespace {

int normalise_axis(py::handle axis_obj, const View& x) {
  if (!py::isinstance<py::int_>(axis_obj) || py::isinstance<py::bool_>(axis_obj))
    type_error("axis must be an int, got " + std::string(py::str(py::type::of(axis_obj).attr("__name__"))));
  const long long axis = int64_arg(axis_obj, "axis");
  if (x.ndim == 0) value_error("x must have at least 1 dimension to take a softmax along axis");
  if (axis < -x.ndim || axis >= x.ndim)
    value_error("axis " + std::to_string(axis) + " is out of range for x with " +
                std::to_string(x.ndim) + " dimensions (shape " + x.shape_str() + ")");
  return static_cast<int>(axis < 0 ? axis + x.ndim : axis);
}

py::array softmax_impl(py::handle x_obj, py::handle axis_obj, py::handle out_obj, bool log) {
  View x = contig_arg(x_obj, "x");
  const int axis = normalise_axis(axis_obj, x);
  index_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= x.shape[d];
  for (int d = axis + 1; d < x.ndim; ++d) inner *= x.shape[d];
  const index_t K = x.shape[axis];

  // Exactly in place is safe (each element of x is last read where y is written there);
  // a partial overlap goes through a temporary.
  Output out(out_obj, x.shape, {&x}, /*elementwise=*/true);
  {
    py::gil_scoped_release nogil;
    if (log) cpu::log_softmax(x.f(), out.data(), outer, K, inner);
    else cpu::softmax(x.f(), out.data(), outer, K, inner);
    out.finish();
  }
  return out.result();
}

py::array softmax_backward(py::handle gy_obj, py::handle y_obj, py::handle axis_obj, py::handle out_obj) {
  View gy = contig_arg(gy_obj, "grad_y");
  View y = contig_arg(y_obj, "y");
  if (gy.shape != y.shape)
    value_error("grad_y has shape " + gy.shape_str() + " but y has shape " + y.shape_str() + "; they must match");
  const int axis = normalise_axis(axis_obj, y);
  index_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= y.shape[d];
  for (int d = axis + 1; d < y.ndim; ++d) inner *= y.shape[d];
  const index_t K = y.shape[axis];

  py::array_t<float> fresh = no_array<py::array_t<float>>();
  View out;
  float* gx = nullptr;
  bool via_tmp = false;
  if (!out_obj.is_none()) {
    out = contig_arg(out_obj, "out", -1, true);
    if (out.shape != y.shape)
      value_error("out has shape " + out.shape_str() + ", expected " + y.shape_str());
    // out may be grad_y or y exactly (the second sweep is element-wise); a partial overlap
    // goes through a temporary.
    via_tmp = (overlaps(out, gy) && out.data != gy.data) || (overlaps(out, y) && out.data != y.data);
    gx = out.f();
  }
  if (out_obj.is_none() || via_tmp) {
    fresh = new_f32(y.shape);
    gx = fresh.mutable_data();
  }
  {
    py::gil_scoped_release nogil;
    cpu::softmax_backward(gy.f(), y.f(), gx, outer, K, inner);
    if (via_tmp) std::copy(gx, gx + y.size(), out.f());
  }
  if (!out_obj.is_none()) return py::reinterpret_borrow<py::array>(out_obj);
  return std::move(fresh);
}

py::tuple softmax_cross_entropy(py::handle logits_obj, py::handle labels_obj) {
  View logits = contig_arg(logits_obj, "logits", 2);
  View labels = i64_arg(labels_obj, "labels", 1);
  const index_t N = logits.shape[0], K = logits.shape[1];
  if (labels.shape[0] != N)
    value_error("labels has shape " + labels.shape_str() + " but logits has " + std::to_string(N) +
                " rows (shape " + logits.shape_str() + "); expected labels of shape (" +
                std::to_string(N) + ",)");
  const auto* lab = reinterpret_cast<const std::int64_t*>(labels.data);
  for (index_t i = 0; i < N; ++i)
    if (lab[i] < 0 || lab[i] >= K)
      value_error("labels[" + std::to_string(i) + "] = " + std::to_string(lab[i]) +
                  " is out of range [0, " + std::to_string(K) + ") for logits of shape " +
                  logits.shape_str());
  py::array_t<float> grad = new_f32(logits.shape);
  float* g = grad.mutable_data();
  double loss;
  {
    py::gil_scoped_release nogil;
    loss = cpu::softmax_cross_entropy(logits.f(), lab, g, N, K);
  }
  return py::make_tuple(loss, grad);
}

}  // namespace

LAMINA_BINDINGS(bind_softmax) {
  m.def(
      "softmax",
      [](py::handle x, py::handle axis, py::handle out) { return softmax_impl(x, axis, out, false); },
      py::arg("x"), py::arg("axis") = -1, py::arg("out") = py::none(),
      "exp(x - max) / sum(exp(x - max)) along `axis` (any axis, float32, C-contiguous). "
      "Max-subtracted: finite for logits of +-1e30.");
  m.def(
      "log_softmax",
      [](py::handle x, py::handle axis, py::handle out) { return softmax_impl(x, axis, out, true); },
      py::arg("x"), py::arg("axis") = -1, py::arg("out") = py::none(),
      "(x - max) - log(sum(exp(x - max))) along `axis`.");
  m.def("softmax_backward", &softmax_backward, py::arg("grad_y"), py::arg("y"), py::arg("axis") = -1,
        py::arg("out") = py::none(),
        "grad_x = y * (grad_y - sum(grad_y * y, axis, keepdims=True)): the gradient through "
        "y = softmax(x, axis) (float32, same shapes, C-contiguous; the sum in float64). out may be "
        "grad_y or y.");
  m.def("softmax_cross_entropy", &softmax_cross_entropy, py::arg("logits"), py::arg("labels"),
        "logits (N, K) float32, labels (N,) integers in [0, K) -> (loss, grad_logits): loss is the "
        "mean over rows of -log softmax(logits)[label] (a Python float, NaN when N == 0); "
        "grad_logits = (softmax(logits) - onehot(labels)) / N, computed in the same pass per row.");
}

}  // namespace lamina::bind
