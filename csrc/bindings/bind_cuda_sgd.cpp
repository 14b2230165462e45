// bind_cuda_sgd.cpp: lamina._cuda's sgd_step and adam_step (lamina/cuda/sgd.h) with the
// reference's signatures (plus the *_out arrays), on float32 lamina.cuda arrays validated here:
// the state arrays (param, velocity, m, v and the *_out arrays) are updated in place, so they
// must be C-contiguous and of param's shape; grad may be strided (copied). The scalars are checked
// as the reference checks them. Both return None.
#include <cstdint>
#include <string>

#include "bind_cuda_array_arg.h"
#include "bind_cuda_common.h"
#include "lamina/cuda/sgd.h"

namespace lamina::cuda::bind {

namespace {

// A state array: float32, C-contiguous, of param's shape.
DevArray state_arg(py::handle obj, const char* name, const std::vector<index_t>& param_shape) {
  DevArray a = array_arg(obj, name);
  if (a.shape != param_shape)
    throw py::value_error(std::string(name) + " has shape " + shape_str(a.shape) + " but param has shape " +
                          shape_str(param_shape));
  if (!a.contiguous()) throw py::value_error(std::string(name) + " must be C-contiguous");
  return a;
}

// param (a state array) and grad (any strides) of its shape.
void param_grad_args(py::handle param_obj, py::handle grad_obj, DevArray& param, DevArray& grad) {
  param = array_arg(param_obj, "param");
  param = state_arg(param_obj, "param", param.shape);
  grad = contig_arg(grad_obj, "grad");
  same_shape(grad, "grad", param, "param", "");
}

// float(obj), which must be >= 0 (NaN is not).
double nonnegative_arg(py::handle obj, const char* name) {
  const double v = real_arg(obj);
  if (!(v >= 0)) throw py::value_error(std::string(name) + " must be >= 0, got " + std::string(py::repr(obj)));
  return v;
}

double unit_interval_arg(py::handle obj, const char* name) {
  const double v = real_arg(obj);
  if (!(v >= 0 && v < 1))
    throw py::value_error(std::string(name) + " must be in [0, 1), got " + std::string(py::repr(obj)));
  return v;
}

void sgd_step_(py::handle param_obj, py::handle grad_obj, py::handle lr_obj, py::handle vel_obj,
               py::handle momentum_obj, py::handle wd_obj, py::handle nesterov_obj, py::handle param_out_obj,
               py::handle vel_out_obj) {
  DevArray param, grad;
  param_grad_args(param_obj, grad_obj, param, grad);
  const double lr = nonnegative_arg(lr_obj, "lr"), momentum = nonnegative_arg(momentum_obj, "momentum"),
               wd = nonnegative_arg(wd_obj, "weight_decay");
  const bool nesterov = truth(nesterov_obj);
  if (nesterov && momentum <= 0) throw py::value_error("nesterov=True requires momentum > 0");
  const DevArray pout = param_out_obj.is_none() ? param : state_arg(param_out_obj, "param_out", param.shape);
  if (!vel_out_obj.is_none() && vel_obj.is_none()) throw py::value_error("velocity_out requires velocity");
  float *vel = nullptr, *vout = nullptr;
  if (momentum != 0) {
    if (vel_obj.is_none()) throw py::value_error("velocity is required when momentum > 0");
    const DevArray v = state_arg(vel_obj, "velocity", param.shape);
    vel = v.f();
    vout = vel_out_obj.is_none() ? vel : state_arg(vel_out_obj, "velocity_out", param.shape).f();
  } else if (!vel_out_obj.is_none()) {  // momentum 0 leaves velocity as it is: copied to velocity_out
    const DevArray v = state_arg(vel_obj, "velocity", param.shape);
    const DevArray vo = state_arg(vel_out_obj, "velocity_out", param.shape);
    if (vo.ptr != v.ptr) {
      if (overlaps(vo, v))
        throw py::value_error("velocity_out partly overlaps velocity; pass velocity itself or a separate array");
      vel = v.f();
      vout = vo.f();
    }
  }
  DeviceGuard guard;
  sgd_step(param.f(), grad.f(), vel, pout.f(), vout, param.size(), static_cast<float>(lr),
           static_cast<float>(momentum), static_cast<float>(wd), nesterov);
}

void adam_step_(py::handle param_obj, py::handle grad_obj, py::handle m_obj, py::handle v_obj, py::handle lr_obj,
                py::handle step_obj, py::handle beta1_obj, py::handle beta2_obj, py::handle eps_obj,
                py::handle wd_obj, py::handle decoupled_obj, py::handle param_out_obj, py::handle m_out_obj,
                py::handle v_out_obj) {
  DevArray param, grad;
  param_grad_args(param_obj, grad_obj, param, grad);
  const DevArray m = state_arg(m_obj, "m", param.shape), v = state_arg(v_obj, "v", param.shape);
  // past 2**63 - 1 steps the bias corrections are 1 whatever the step
  const long long step = count_arg(step_obj, "step");
  const double lr = nonnegative_arg(lr_obj, "lr"), eps = nonnegative_arg(eps_obj, "eps"),
               wd = nonnegative_arg(wd_obj, "weight_decay");
  const double beta1 = unit_interval_arg(beta1_obj, "beta1"), beta2 = unit_interval_arg(beta2_obj, "beta2");
  const bool decoupled = truth(decoupled_obj);
  const DevArray pout = param_out_obj.is_none() ? param : state_arg(param_out_obj, "param_out", param.shape);
  const DevArray mout = m_out_obj.is_none() ? m : state_arg(m_out_obj, "m_out", param.shape);
  const DevArray vout = v_out_obj.is_none() ? v : state_arg(v_out_obj, "v_out", param.shape);
  // The constants are formed in double by the launcher, as the CPU kernel forms them (the same bits).
  DeviceGuard guard;
  adam_step(param.f(), grad.f(), m.f(), v.f(), pout.f(), mout.f(), vout.f(), param.size(), lr, step, beta1, beta2,
            eps, wd, decoupled);
}

}  // namespace

void bind_sgd(py::module_& m) {
  m.def("sgd_step", &sgd_step_, py::arg("param"), py::arg("grad"), py::arg("lr"), py::arg("velocity") = py::none(),
        py::arg("momentum") = 0.0, py::arg("weight_decay") = 0.0, py::arg("nesterov") = false,
        py::arg("param_out") = py::none(), py::arg("velocity_out") = py::none());
  m.def("adam_step", &adam_step_, py::arg("param"), py::arg("grad"), py::arg("m"), py::arg("v"), py::arg("lr"),
        py::arg("step"), py::arg("beta1") = 0.9, py::arg("beta2") = 0.999, py::arg("eps") = 1e-8,
        py::arg("weight_decay") = 0.0, py::arg("decoupled") = false, py::arg("param_out") = py::none(),
        py::arg("m_out") = py::none(), py::arg("v_out") = py::none());
}

}  // namespace lamina::cuda::bind
