// bind_cuda_loss.cpp: lamina._cuda's mse and binary_cross_entropy (lamina/cuda/loss.h) on device
// addresses; they return the loss (one copy back).
#include "bind_cuda_common.h"
#include "lamina/cuda/loss.h"

namespace lamina::cuda::bind {

void bind_loss(py::module_& m) {
  m.def("mse", [](P pred, P target, P grad, index_t n, index_t n_examples) {
    DeviceGuard guard;
    return mse(ptr(pred), ptr(target), ptr(grad), n, n_examples);
  });
  m.def("binary_cross_entropy", [](P prob, P target, P grad, index_t n, double eps) {
    DeviceGuard guard;
    return binary_cross_entropy(ptr(prob), ptr(target), ptr(grad), n, eps);
  });
}

}  // namespace lamina::cuda::bind
