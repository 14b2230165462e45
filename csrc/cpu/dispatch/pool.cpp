// pool.cpp: the pool entry points of lamina/pool.h, each a switch to its per-ISA twin in
// csrc/cpu/kernels/pool.cpp (isa_kernel.h). Compiled once, with no arch flags.
#include "lamina/pool.h"

#include "isa_kernel.h"

LAMINA_ISA_KERNEL(max_pool2d)
LAMINA_ISA_KERNEL(max_pool2d_backward)
LAMINA_ISA_KERNEL(avg_pool2d)
LAMINA_ISA_KERNEL(avg_pool2d_backward)

namespace lamina::cpu {
void max_pool2d(const float* x, float* y, std::int64_t* idx, const Pool2d& g) {
  LAMINA_DISPATCH(max_pool2d, x, y, idx, g)
}
index_t max_pool2d_backward(const float* grad_y, const std::int64_t* idx, float* grad_x,
                            const Pool2d& g) {
  LAMINA_DISPATCH(max_pool2d_backward, grad_y, idx, grad_x, g)
}
void avg_pool2d(const float* x, float* y, const Pool2d& g) { LAMINA_DISPATCH(avg_pool2d, x, y, g) }
void avg_pool2d_backward(const float* grad_y, float* grad_x, const Pool2d& g) {
  LAMINA_DISPATCH(avg_pool2d_backward, grad_y, grad_x, g)
}
}  // namespace lamina::cpu
