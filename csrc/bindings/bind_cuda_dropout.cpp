// bind_cuda_dropout.cpp: lamina._cuda's dropout and dropout_backward (lamina/cuda/dropout.h) on
// device addresses.
#include "bind_cuda_common.h"
#include "lamina/cuda/dropout.h"

namespace lamina::cuda::bind {

void bind_dropout(py::module_& m) {
  m.def("dropout", [](P x, P y, P mask, index_t n, double p, std::uint64_t seed) {
    DeviceGuard guard;
    dropout(ptr(x), ptr(y), ptr(mask), n, p, seed);
  });
  m.def("dropout_backward", [](P gy, P mask, P gx, index_t n, double p) {
    DeviceGuard guard;
    dropout_backward(ptr(gy), ptr(mask), ptr(gx), n, p);
  });
}

}  // namespace lamina::cuda::bind
