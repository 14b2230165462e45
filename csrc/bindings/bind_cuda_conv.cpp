// bind_cuda_conv.cpp: lamina._cuda's conv2d and conv2d_backward (lamina/cuda/conv.h) on device
// addresses, the geometry as Conv2dShape's fields (0 for b or grad_x: none).
#include "bind_cuda_common.h"
#include "lamina/cuda/conv.h"

namespace lamina::cuda::bind {

namespace {
Conv2dShape conv2d_shape(const std::vector<index_t>& v) {
  if (v.size() != 15) throw py::value_error("the geometry is Conv2dShape's 15 fields");
  return Conv2dShape{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14]};
}
}  // namespace

void bind_conv(py::module_& m) {
  m.def("conv2d", [](const std::vector<index_t>& g, P x, P w, P b, bool relu, P y) {
    DeviceGuard guard;
    conv2d(conv2d_shape(g), ptr(x), ptr(w), ptr(b), relu, ptr(y));
  });
  m.def("conv2d_backward", [](const std::vector<index_t>& g, P x, P w, P gy, P gx, P gw, P gb) {
    DeviceGuard guard;
    conv2d_backward(conv2d_shape(g), ptr(x), ptr(w), ptr(gy), ptr(gx), ptr(gw), ptr(gb));
  });
}

}  // namespace lamina::cuda::bind
