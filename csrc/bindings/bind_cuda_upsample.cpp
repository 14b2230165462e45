// bind_cuda_upsample.cpp: lamina._cuda's upsample_nearest2d and its backward
// (lamina/cuda/upsample.h) on device addresses.
#include "bind_cuda_common.h"
#include "lamina/cuda/upsample.h"

namespace lamina::cuda::bind {

void bind_upsample(py::module_& m) {
  m.def("upsample_nearest2d", [](P x, P y, index_t planes, index_t H, index_t W, index_t s) {
    DeviceGuard guard;
    upsample_nearest2d(ptr(x), ptr(y), planes, H, W, s);
  });
  m.def("upsample_nearest2d_backward", [](P gy, P gx, index_t planes, index_t H, index_t W, index_t s) {
    DeviceGuard guard;
    upsample_nearest2d_backward(ptr(gy), ptr(gx), planes, H, W, s);
  });
}

}  // namespace lamina::cuda::bind
