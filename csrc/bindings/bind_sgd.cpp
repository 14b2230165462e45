// bind_sgd.cpp: sgd_step (in place on param and velocity) and adam_step (on param, m, v).
#include <string>
#include <utility>

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

// >= 0, kept in double (Adam's lr and bias corrections are formed in double, as in torch).
double nonneg64(py::handle obj, const char* name) {
  const double v = real_arg(obj, name);
  if (!(v >= 0.0)) value_error(std::string(name) + " must be >= 0, got " + std::string(py::repr(obj)));
  return v;
}

// beta in [0, 1), as torch.optim.Adam requires.
double beta_arg(py::handle obj, const char* name) {
  const double v = real_arg(obj, name);
  if (!(v >= 0.0 && v < 1.0)) value_error(std::string(name) + " must be in [0, 1), got " + std::string(py::repr(obj)));
  return v;
}

void adam_step(py::handle param_obj, py::handle grad_obj, py::handle m_obj, py::handle v_obj, py::handle lr_obj,
               py::handle step_obj, py::handle b1_obj, py::handle b2_obj, py::handle eps_obj, py::handle wd_obj,
               bool decoupled) {
  View param = contig_arg(param_obj, "param", -1, true);
  View grad = contig_arg(grad_obj, "grad");
  View m = contig_arg(m_obj, "m", -1, true);
  View v = contig_arg(v_obj, "v", -1, true);
  for (const auto& [view, name] : {std::pair<const View*, const char*>{&grad, "grad"}, {&m, "m"}, {&v, "v"}})
    if (view->shape != param.shape)
      value_error(std::string(name) + " has shape " + view->shape_str() + " but param has shape " + param.shape_str());
  // Past 2**63 - 1 the bias corrections are exactly 1 whatever the step: saturate.
  const long long step = int64_arg(step_obj, "step", /*saturate=*/true);
  if (step < 1) value_error("step must be >= 1 (the first step is 1), got " + std::to_string(step));
  const double lr = nonneg64(lr_obj, "lr"), eps = nonneg64(eps_obj, "eps"), wd = nonneg64(wd_obj, "weight_decay");
  const double beta1 = beta_arg(b1_obj, "beta1"), beta2 = beta_arg(b2_obj, "beta2");
  if (overlaps(grad, param) || overlaps(grad, m) || overlaps(grad, v))
    value_error("grad overlaps param, m or v; pass separate arrays");
  if (overlaps(m, param) || overlaps(v, param) || overlaps(m, v))
    value_error("param, m and v must not overlap; pass separate arrays (m and v start as zeros)");
  py::gil_scoped_release nogil;
  cpu::adam_step(param.f(), grad.f(), m.f(), v.f(), param.size(), lr, step, beta1, beta2, eps, wd, decoupled);
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
  m.def("adam_step", &adam_step, py::arg("param"), py::arg("grad"), py::arg("m"), py::arg("v"), py::arg("lr"),
        py::arg("step"), py::arg("beta1") = 0.9, py::arg("beta2") = 0.999, py::arg("eps") = 1e-8,
        py::arg("weight_decay") = 0.0, py::arg("decoupled") = false,
        "One Adam (decoupled=False) or AdamW (decoupled=True) step in place on param, m and v, with "
        "torch.optim.Adam / AdamW's semantics (no amsgrad):\n"
        "  AdamW: param *= 1 - lr * weight_decay; g = grad.   Adam: g = grad + weight_decay * param\n"
        "  m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g * g\n"
        "  param -= (lr / (1 - beta1**step)) * m / (sqrt(v) / sqrt(1 - beta2**step) + eps)\n"
        "m and v start as zeros; step counts from 1. param, grad, m, v: float32, same shape, "
        "C-contiguous, not overlapping. lr, eps, weight_decay >= 0; betas in [0, 1). Returns None.");
}

}  // namespace lamina::bind
