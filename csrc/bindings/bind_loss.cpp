// bind_loss.cpp: mse and binary_cross_entropy, each returning (loss: float, grad: ndarray).
#include <cmath>
#include <string>

#include "bind_eltwise.h"
#include "lamina/loss.h"

namespace lamina::bind {
namespace {

void same_shape(const View& a, const char* an, const View& b, const char* bn) {
  if (a.shape != b.shape)
    value_error(std::string(bn) + " has shape " + b.shape_str() + " but " + an + " has shape " +
                a.shape_str() + "; they must match");
}

py::tuple mse(py::handle pred_obj, py::handle target_obj) {
  View pred = contig_arg(pred_obj, "pred"), target = contig_arg(target_obj, "target");
  same_shape(pred, "pred", target, "target");
  if (pred.ndim == 0 || pred.shape[0] == 0)
    value_error("pred must have at least one example along its first dimension (the batch), got shape " +
                pred.shape_str());
  py::array_t<float> grad = new_f32(pred.shape);
  float* g = grad.mutable_data();
  double loss;
  {
    py::gil_scoped_release nogil;
    loss = cpu::mse(pred.f(), target.f(), g, pred.size(), pred.shape[0]);
  }
  return py::make_tuple(loss, grad);
}

py::tuple bce(py::handle prob_obj, py::handle target_obj, double eps) {
  View prob = contig_arg(prob_obj, "prob"), target = contig_arg(target_obj, "target");
  same_shape(prob, "prob", target, "target");
  if (!(eps > 0.0 && eps < 0.5))
    value_error("eps must be in (0, 0.5), got " + std::to_string(eps));
  py::array_t<float> grad = new_f32(prob.shape);
  float* g = grad.mutable_data();
  double loss;
  {
    py::gil_scoped_release nogil;
    loss = cpu::binary_cross_entropy(prob.f(), target.f(), g, prob.size(), static_cast<float>(eps));
  }
  return py::make_tuple(loss, grad);
}

}  // namespace

LAMINA_BINDINGS(bind_loss) {
  m.def("mse", &mse, py::arg("pred"), py::arg("target"),
        "Quadratic cost C = 1/(2n) sum_x ||y(x) - a(x)||^2 with n the number of examples (the "
        "first dimension of pred; every other dimension is summed). Returns (C, dC/dpred) with "
        "dC/dpred = (pred - target) / n. pred, target: same shape, float32, C-contiguous.");
  m.def("binary_cross_entropy", &bce, py::arg("prob"), py::arg("target"), py::arg("eps") = 1e-7,
        "Mean over all elements of -[t log p + (1 - t) log(1 - p)], with p clamped to "
        "[eps, 1 - eps] so probabilities of exactly 0 or 1 give finite values. Returns "
        "(loss, dloss/dprob) with grad = (pc - t) / (pc (1 - pc)) / size, pc the clamped p "
        "(finite, and of the right sign, at p = 0 or 1). NaN loss for empty arrays.");
}

}  // namespace lamina::bind
