// bind_cuda_gemm.cpp: lamina._cuda's matmul and linear (lamina/cuda/gemm.h) on device addresses
// with leading dimensions (0 for b: no bias).
#include "bind_cuda_common.h"
#include "lamina/cuda/gemm.h"

namespace lamina::cuda::bind {

void bind_gemm(py::module_& m) {
  m.def("matmul", [](P a, index_t lda, bool trans_a, P b, index_t ldb, bool trans_b, P c, index_t M, index_t N,
                     index_t K) {
    DeviceGuard guard;
    matmul(ptr(a), lda, trans_a, ptr(b), ldb, trans_b, ptr(c), M, N, K);
  });
  m.def("linear", [](P x, index_t ldx, P w, index_t ldw, P b, bool relu, P y, index_t n, index_t o, index_t k) {
    DeviceGuard guard;
    linear(ptr(x), ldx, ptr(w), ldw, ptr(b), relu, ptr(y), n, o, k);
  });
}

}  // namespace lamina::cuda::bind
