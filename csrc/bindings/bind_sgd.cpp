// bind_sgd.cpp: sgd_step, in place on param (and velocity).
#include <string>

#include "bind_eltwise.h"
#include "lamina/sgd.h"

namespace lamina::bind {
namespace {

float nonneg(py::handle obj, const char* name) {
  const double v = real_arg(obj, name);
  if (!(v >= 0.0)) value_error(std::string(name) + " must be >= 0, got " + std::string(py::repr(obj)));
  return static_cast<float>(v);
}

void sgd_step(py::handle param_obj, py::handle grad_obj, py::handle lr_obj, py::handle vel_obj,
              py::handle mom_obj, py::handle wd_obj, bool nesterov) {
  View param = contig_arg(param_obj, "param", -1, true);
  View grad = contig_arg(grad_obj, "grad");
  if (grad.shape != param.shape)
    value_error("grad has shape " + grad.shape_str() + " but param has shape " + param.shape_str());
  const float lr = nonneg(lr_obj, "lr"), momentum = nonneg(mom_obj, "momentum"),
              weight_decay = nonneg(wd_obj, "weight_decay");
  if (nesterov && momentum <= 0.0f) value_error("nesterov=True requires momentum > 0");
  if (overlaps(param, grad)) value_error("grad overlaps param; pass separate arrays");
  float* vel = nullptr;
  View v;
  if (momentum != 0.0f) {
    if (vel_obj.is_none())
      value_error("velocity is required when momentum > 0: pass a float32 array of param's shape, "
                  "initialised to zeros (the first step then gives velocity = g, as in PyTorch)");
    v = contig_arg(vel_obj, "velocity", -1, true);
    if (v.shape != param.shape)
      value_error("velocity has shape " + v.shape_str() + " but param has shape " + param.shape_str());
    if (overlaps(v, param) || overlaps(v, grad))
      value_error("velocity overlaps param or grad; pass a separate array");
    vel = v.f();
  }
  py::gil_scoped_release nogil;
  cpu::sgd_step(param.f(), grad.f(), vel, param.size(), lr, momentum, weight_decay, nesterov);
}

}  // namespace

LAMINA_BINDINGS(bind_sgd) {
  m.def("sgd_step", &sgd_step, py::arg("param"), py::arg("grad"), py::arg("lr"),
        py::arg("velocity") = py::none(), py::arg("momentum") = 0.0, py::arg("weight_decay") = 0.0,
        py::arg("nesterov") = false,
        "One SGD step in place, with torch.optim.SGD's semantics (dampening 0):\n"
        "  g = grad + weight_decay * param\n"
        "  if momentum: velocity = momentum * velocity + g; g = g + momentum * velocity if nesterov else velocity\n"
        "  param -= lr * g\n"
        "velocity (needed when momentum > 0, updated in place) starts as zeros, so the first step "
        "gives velocity = g exactly as PyTorch's first step does; with momentum 0 it is not used. "
        "param, grad, velocity: float32, same shape, C-contiguous, not overlapping; param and "
        "velocity writeable. lr, momentum, weight_decay >= 0; nesterov needs momentum > 0. "
        "One pass over memory. Returns None.");
}

}  // namespace lamina::bind
