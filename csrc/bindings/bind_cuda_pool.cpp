// bind_cuda_pool.cpp: lamina._cuda's max_pool2d, avg_pool2d and their backward passes
// (lamina/cuda/pool.h) on device addresses, the geometry as Pool2d's fields.
#include "bind_cuda_common.h"
#include "lamina/cuda/pool.h"

namespace lamina::cuda::bind {

namespace {
Pool2d pool2d(const std::vector<index_t>& v) {
  if (v.size() != 11) throw py::value_error("the geometry is Pool2d's 11 fields");
  return Pool2d{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10]};
}
}  // namespace

void bind_pool(py::module_& m) {
  m.def("max_pool2d", [](P x, P y, P idx, const std::vector<index_t>& g) {
    DeviceGuard guard;
    max_pool2d(ptr(x), ptr(y), ptr<std::int64_t>(idx), pool2d(g));
  });
  m.def("max_pool2d_backward", [](P gy, P idx, P gx, const std::vector<index_t>& g) {
    DeviceGuard guard;
    return max_pool2d_backward(ptr(gy), ptr<const std::int64_t>(idx), ptr(gx), pool2d(g));
  });
  m.def("avg_pool2d", [](P x, P y, const std::vector<index_t>& g) {
    DeviceGuard guard;
    avg_pool2d(ptr(x), ptr(y), pool2d(g));
  });
  m.def("avg_pool2d_backward", [](P gy, P gx, const std::vector<index_t>& g) {
    DeviceGuard guard;
    avg_pool2d_backward(ptr(gy), ptr(gx), pool2d(g));
  });
}

}  // namespace lamina::cuda::bind
