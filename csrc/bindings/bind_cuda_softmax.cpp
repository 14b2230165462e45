// bind_cuda_softmax.cpp: lamina._cuda's softmax, log_softmax, softmax_backward and
// softmax_cross_entropy (lamina/cuda/softmax.h) on device addresses; an array is (outer, K, inner)
// around the axis. softmax_cross_entropy returns (mean loss, first bad label row or -1).
#include "bind_cuda_common.h"
#include "lamina/cuda/softmax.h"

namespace lamina::cuda::bind {

void bind_softmax(py::module_& m) {
  m.def("softmax", [](P x, P y, index_t outer, index_t K, index_t inner) {
    DeviceGuard guard;
    softmax(ptr(x), ptr(y), outer, K, inner);
  });
  m.def("log_softmax", [](P x, P y, index_t outer, index_t K, index_t inner) {
    DeviceGuard guard;
    log_softmax(ptr(x), ptr(y), outer, K, inner);
  });
  m.def("softmax_backward", [](P gy, P y, P gx, index_t outer, index_t K, index_t inner) {
    DeviceGuard guard;
    softmax_backward(ptr(gy), ptr(y), ptr(gx), outer, K, inner);
  });
  m.def("softmax_cross_entropy", [](P logits, P labels, bool labels_i64, P grad, index_t N, index_t K) {
    DeviceGuard guard;
    index_t bad = -1;
    const double loss = softmax_cross_entropy(ptr(logits), ptr<void>(labels), labels_i64, ptr(grad), N, K, &bad);
    return py::make_tuple(loss, bad);
  });
}

}  // namespace lamina::cuda::bind
