// gemm.cpp: the gemm entry points of lamina/gemm.h, each a switch to its per-ISA twin in
// csrc/cpu/kernels/gemm.cpp (isa_kernel.h). Compiled once, with no arch flags.
#include "lamina/gemm.h"

#include "isa_kernel.h"

LAMINA_ISA_KERNEL(sgemm)

namespace lamina::cpu {
void sgemm(index_t M, index_t N, index_t K, MatRef A, MatRef B, float* C, index_t ldc,
           const GemmEpilogue& ep, int nthreads) {
  LAMINA_DISPATCH(sgemm, M, N, K, A, B, C, ldc, ep, nthreads)
}
}  // namespace lamina::cpu
