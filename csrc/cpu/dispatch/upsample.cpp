// upsample.cpp: the upsample entry points of lamina/upsample.h, each a switch to its per-ISA twin in
// csrc/cpu/kernels/upsample.cpp (isa_kernel.h). Compiled once, with no arch flags.
#include "lamina/upsample.h"

#include "isa_kernel.h"

LAMINA_ISA_KERNEL(upsample_nearest2d)
LAMINA_ISA_KERNEL(upsample_nearest2d_backward)

namespace lamina::cpu {
void upsample_nearest2d(const float* x, float* y, index_t planes, index_t H, index_t W, index_t s) {
  LAMINA_DISPATCH(upsample_nearest2d, x, y, planes, H, W, s)
}
void upsample_nearest2d_backward(const float* grad_y, float* grad_x, index_t planes, index_t H, index_t W, index_t s) {
  LAMINA_DISPATCH(upsample_nearest2d_backward, grad_y, grad_x, planes, H, W, s)
}
}  // namespace lamina::cpu
