// bind_cuda_loss.cpp: lamina._cuda's mse and binary_cross_entropy (lamina/cuda/loss.h) with the
// reference's signatures, on float32 lamina.cuda arrays validated here (strided ones copied); each
// returns (loss, grad) with the loss as a Python float (one copy back).
#include <limits>
#include <string>

#include "bind_cuda_array_arg.h"
#include "bind_cuda_common.h"
#include "lamina/cuda/loss.h"

namespace lamina::cuda::bind {

namespace {

py::tuple mse_(py::handle pred_obj, py::handle target_obj) {
  const DevArray pred = contig_arg(pred_obj, "pred"), target = contig_arg(target_obj, "target");
  same_shape(target, "target", pred, "pred", "");
  if (pred.shape.empty() || pred.shape[0] == 0)
    throw py::value_error("pred must have at least one example along its first dimension, got " +
                          shape_str(pred.shape));
  const DevArray grad = new_array(pred.shape);
  double loss;
  {
    DeviceGuard guard;
    loss = mse(pred.f(), target.f(), grad.f(), pred.size(), pred.shape[0]);
  }
  return py::make_tuple(loss, grad.obj);
}

py::tuple binary_cross_entropy_(py::handle prob_obj, py::handle target_obj, py::handle eps_obj) {
  const DevArray prob = contig_arg(prob_obj, "prob"), target = contig_arg(target_obj, "target");
  same_shape(target, "target", prob, "prob", "");
  const double eps = real_arg(eps_obj);
  if (!(0 < eps && eps < 0.5)) throw py::value_error("eps must be in (0, 0.5), got " + std::string(py::str(eps_obj)));
  const DevArray grad = new_array(prob.shape);
  if (prob.size() == 0) return py::make_tuple(std::numeric_limits<double>::quiet_NaN(), grad.obj);
  double loss;
  {
    DeviceGuard guard;
    loss = binary_cross_entropy(prob.f(), target.f(), grad.f(), prob.size(), eps);
  }
  return py::make_tuple(loss, grad.obj);
}

}  // namespace

void bind_loss(py::module_& m) {
  m.def("mse", &mse_, py::arg("pred"), py::arg("target"));
  m.def("binary_cross_entropy", &binary_cross_entropy_, py::arg("prob"), py::arg("target"), py::arg("eps") = 1e-7);
}

}  // namespace lamina::cuda::bind
