// bind_cuda_activation.cpp: lamina._cuda's relu, sigmoid, tanh, leaky_relu and their backward
// passes (lamina/cuda/activation.h): (x, y, n) and (grad_y, saved, grad_x, n) on device addresses.
#include "bind_cuda_common.h"
#include "lamina/cuda/activation.h"

namespace lamina::cuda::bind {

namespace {
template <void (*F)(const float*, float*, index_t)>
void forward(py::module_& m, const char* name) {
  m.def(name, [](P x, P y, index_t n) {
    DeviceGuard guard;
    F(ptr(x), ptr(y), n);
  }, py::arg("x"), py::arg("y"), py::arg("n"));
}
template <void (*F)(const float*, const float*, float*, index_t)>
void backward(py::module_& m, const char* name) {
  m.def(name, [](P gy, P saved, P gx, index_t n) {
    DeviceGuard guard;
    F(ptr(gy), ptr(saved), ptr(gx), n);
  }, py::arg("grad_y"), py::arg("saved"), py::arg("grad_x"), py::arg("n"));
}
}  // namespace

void bind_activation(py::module_& m) {
  forward<relu>(m, "relu");
  backward<relu_backward>(m, "relu_backward");
  forward<sigmoid>(m, "sigmoid");
  backward<sigmoid_backward>(m, "sigmoid_backward");
  forward<tanh>(m, "tanh");
  backward<tanh_backward>(m, "tanh_backward");
  m.def("leaky_relu", [](P x, P y, index_t n, float slope) {
    DeviceGuard guard;
    leaky_relu(ptr(x), ptr(y), n, slope);
  });
  m.def("leaky_relu_backward", [](P gy, P x, P gx, index_t n, float slope) {
    DeviceGuard guard;
    leaky_relu_backward(ptr(gy), ptr(x), ptr(gx), n, slope);
  });
}

}  // namespace lamina::cuda::bind
