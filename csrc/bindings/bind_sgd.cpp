// bind_sgd.cpp: sgd_step (on param and velocity) and adam_step (on param, m, v), in place or
// into optional output arrays (param_out, velocity_out, m_out, v_out).
#include <algorithm>
#include <string>
#include <vector>
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

// An optimiser state array and where its new value goes. `out_obj` None: in place (the
// input must be writeable); else `out` (float32, the input's shape, C-contiguous, writeable),
// which may be the input itself but must not overlap it partly.
struct State {
  View in, out;
  bool separate = false;  // out is not the input's memory
  float* out_ptr() const { return separate ? out.f() : in.f(); }
};

State state_arg(py::handle in_obj, const char* name, py::handle out_obj, const char* out_name,
                const View& param) {
  State st;
  st.in = contig_arg(in_obj, name, -1, /*writeable=*/out_obj.is_none());
  if (st.in.shape != param.shape)
    value_error(std::string(name) + " has shape " + st.in.shape_str() + " but param has shape " + param.shape_str());
  if (out_obj.is_none()) return st;
  st.out = contig_arg(out_obj, out_name, -1, /*writeable=*/true);
  if (st.out.shape != st.in.shape)
    value_error(std::string(out_name) + " has shape " + st.out.shape_str() + " but " + name + " has shape " +
                st.in.shape_str());
  st.separate = st.out.size() > 0 && st.out.data != st.in.data;
  if (st.separate && overlaps(st.out, st.in))
    value_error(std::string(out_name) + " partly overlaps " + name + "; pass " + name +
                " itself (in place) or a separate array");
  return st;
}

// Outputs must not overlap any array but their own input (exactly: the in-place case).
void no_overlap(const State& st, const char* out_name, const std::vector<std::pair<const View*, const char*>>& others) {
  if (!st.separate) return;
  for (const auto& [v, n] : others)
    if (v->data != nullptr && overlaps(st.out, *v))
      value_error(std::string(out_name) + " overlaps " + n + "; pass a separate array");
}

void sgd_step(py::handle param_obj, py::handle grad_obj, py::handle lr_obj, py::handle vel_obj,
              py::handle mom_obj, py::handle wd_obj, bool nesterov, py::handle param_out_obj,
              py::handle vel_out_obj) {
  View param0 = contig_arg(param_obj, "param");
  State p = state_arg(param_obj, "param", param_out_obj, "param_out", param0);
  const View& param = p.in;
  View grad = contig_arg(grad_obj, "grad");
  if (grad.shape != param.shape)
    value_error("grad has shape " + grad.shape_str() + " but param has shape " + param.shape_str());
  const float lr = nonneg(lr_obj, "lr"), momentum = nonneg(mom_obj, "momentum"),
              weight_decay = nonneg(wd_obj, "weight_decay");
  if (nesterov && momentum <= 0.0f) value_error("nesterov=True requires momentum > 0");
  if (overlaps(param, grad)) value_error("grad overlaps param; pass separate arrays");
  if (!vel_out_obj.is_none() && vel_obj.is_none())
    value_error("velocity_out requires velocity (the velocity it is the new value of)");
  State v;
  const bool use_vel = momentum != 0.0f || !vel_out_obj.is_none();
  if (momentum != 0.0f && vel_obj.is_none())
    value_error("velocity is required when momentum > 0: pass a float32 array of param's shape, "
                "initialised to zeros (the first step then gives velocity = g, as in PyTorch)");
  if (use_vel) {
    v = state_arg(vel_obj, "velocity", vel_out_obj, "velocity_out", param);
    if (overlaps(v.in, param) || overlaps(v.in, grad))
      value_error("velocity overlaps param or grad; pass a separate array");
  }
  no_overlap(p, "param_out", {{&grad, "grad"}, {&v.in, "velocity"}, {&v.out, "velocity_out"}});
  no_overlap(v, "velocity_out", {{&param, "param"}, {&grad, "grad"}, {&p.out, "param_out"}});
  py::gil_scoped_release nogil;
  if (momentum != 0.0f) {
    cpu::sgd_step(param.f(), grad.f(), v.in.f(), p.out_ptr(), v.out_ptr(), param.size(), lr, momentum,
                  weight_decay, nesterov);
  } else {
    cpu::sgd_step(param.f(), grad.f(), nullptr, p.out_ptr(), nullptr, param.size(), lr, momentum,
                  weight_decay, nesterov);
    // momentum 0 leaves velocity as it is: that is its new value
    if (v.separate) std::copy(v.in.f(), v.in.f() + v.in.size(), v.out.f());
  }
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
               bool decoupled, py::handle param_out_obj, py::handle m_out_obj, py::handle v_out_obj) {
  View param0 = contig_arg(param_obj, "param");
  State p = state_arg(param_obj, "param", param_out_obj, "param_out", param0);
  const View& param = p.in;
  View grad = contig_arg(grad_obj, "grad");
  if (grad.shape != param.shape)
    value_error("grad has shape " + grad.shape_str() + " but param has shape " + param.shape_str());
  State m = state_arg(m_obj, "m", m_out_obj, "m_out", param);
  State v = state_arg(v_obj, "v", v_out_obj, "v_out", param);
  // Past 2**63 - 1 the bias corrections are exactly 1 whatever the step: saturate.
  const long long step = int64_arg(step_obj, "step", /*saturate=*/true);
  if (step < 1) value_error("step must be >= 1 (the first step is 1), got " + std::to_string(step));
  const double lr = nonneg64(lr_obj, "lr"), eps = nonneg64(eps_obj, "eps"), wd = nonneg64(wd_obj, "weight_decay");
  const double beta1 = beta_arg(b1_obj, "beta1"), beta2 = beta_arg(b2_obj, "beta2");
  if (overlaps(grad, param) || overlaps(grad, m.in) || overlaps(grad, v.in))
    value_error("grad overlaps param, m or v; pass separate arrays");
  if (overlaps(m.in, param) || overlaps(v.in, param) || overlaps(m.in, v.in))
    value_error("param, m and v must not overlap; pass separate arrays (m and v start as zeros)");
  no_overlap(p, "param_out", {{&grad, "grad"}, {&m.in, "m"}, {&v.in, "v"}, {&m.out, "m_out"}, {&v.out, "v_out"}});
  no_overlap(m, "m_out", {{&param, "param"}, {&grad, "grad"}, {&v.in, "v"}, {&p.out, "param_out"}, {&v.out, "v_out"}});
  no_overlap(v, "v_out", {{&param, "param"}, {&grad, "grad"}, {&m.in, "m"}, {&p.out, "param_out"}, {&m.out, "m_out"}});
  py::gil_scoped_release nogil;
  cpu::adam_step(param.f(), grad.f(), m.in.f(), v.in.f(), p.out_ptr(), m.out_ptr(), v.out_ptr(), param.size(), lr,
                 step, beta1, beta2, eps, wd, decoupled);
}

}  // namespace

LAMINA_BINDINGS(bind_sgd) {
  m.def("sgd_step", &sgd_step, py::arg("param"), py::arg("grad"), py::arg("lr"),
        py::arg("velocity") = py::none(), py::arg("momentum") = 0.0, py::arg("weight_decay") = 0.0,
        py::arg("nesterov") = false, py::arg("param_out") = py::none(), py::arg("velocity_out") = py::none(),
        "One SGD step in place (or out of place: see param_out), with torch.optim.SGD's semantics (dampening 0):\n"
        "  g = grad + weight_decay * param\n"
        "  if momentum: velocity = momentum * velocity + g; g = g + momentum * velocity if nesterov else velocity\n"
        "  param -= lr * g\n"
        "velocity (needed when momentum > 0, updated in place) starts as zeros, so the first step "
        "gives velocity = g exactly as PyTorch's first step does; with momentum 0 it is not used. "
        "param, grad, velocity: float32, same shape, C-contiguous, not overlapping; param and "
        "velocity writeable. lr, momentum, weight_decay >= 0; nesterov needs momentum > 0. "
        "param_out / velocity_out (optional, same shape, float32, C-contiguous, writeable): given, "
        "they receive the new param / velocity and param / velocity are only read (an output may "
        "be its input itself, i.e. in place; any other overlap is a ValueError); velocity_out "
        "needs velocity. One pass over memory either way. Returns None.");
  m.def("adam_step", &adam_step, py::arg("param"), py::arg("grad"), py::arg("m"), py::arg("v"), py::arg("lr"),
        py::arg("step"), py::arg("beta1") = 0.9, py::arg("beta2") = 0.999, py::arg("eps") = 1e-8,
        py::arg("weight_decay") = 0.0, py::arg("decoupled") = false, py::arg("param_out") = py::none(),
        py::arg("m_out") = py::none(), py::arg("v_out") = py::none(),
        "One Adam (decoupled=False) or AdamW (decoupled=True) step in place on param, m and v, with "
        "torch.optim.Adam / AdamW's semantics (no amsgrad):\n"
        "  AdamW: param *= 1 - lr * weight_decay; g = grad.   Adam: g = grad + weight_decay * param\n"
        "  m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g * g\n"
        "  param -= (lr / (1 - beta1**step)) * m / (sqrt(v) / sqrt(1 - beta2**step) + eps)\n"
        "m and v start as zeros; step counts from 1. param, grad, m, v: float32, same shape, "
        "C-contiguous, not overlapping. lr, eps, weight_decay >= 0; betas in [0, 1). param_out, "
        "m_out, v_out (optional): given, each receives the new value of its array, which is then "
        "only read (as for sgd_step). Returns None.");
}

}  // namespace lamina::bind
