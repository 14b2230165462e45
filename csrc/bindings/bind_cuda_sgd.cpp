// bind_cuda_sgd.cpp: lamina._cuda's sgd_step and adam_step (lamina/cuda/sgd.h) on device
// addresses (0: a velocity not used).
#include "bind_cuda_common.h"
#include "lamina/cuda/sgd.h"

namespace lamina::cuda::bind {

void bind_sgd(py::module_& m) {
  m.def("sgd_step", [](P param, P grad, P vel, P param_out, P vel_out, index_t n, float lr, float momentum,
                       float weight_decay, bool nesterov) {
    DeviceGuard guard;
    sgd_step(ptr(param), ptr(grad), ptr(vel), ptr(param_out), ptr(vel_out), n, lr, momentum, weight_decay, nesterov);
  });
  m.def("adam_step", [](P param, P grad, P mm, P vv, P param_out, P m_out, P v_out, index_t n, double lr,
                        std::int64_t step, double beta1, double beta2, double eps, double weight_decay, bool decoupled) {
    DeviceGuard guard;
    adam_step(ptr(param), ptr(grad), ptr(mm), ptr(vv), ptr(param_out), ptr(m_out), ptr(v_out), n, lr, step, beta1,
              beta2, eps, weight_decay, decoupled);
  });
}

}  // namespace lamina::cuda::bind
