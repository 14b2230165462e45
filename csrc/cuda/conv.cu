// conv.cu: the device launches of convolution's pieces (im2col, col2im, the permute of grad_y,
// grad_b as row sums); lamina/cuda/ops.h puts them together with the GEMMs.
#include "launch.cuh"
#include "lamina/cuda/conv.h"

namespace lamina::cuda {

LAMINA_CUDA_EACH(Im2colBody)
LAMINA_CUDA_EACH(Col2imBody)
LAMINA_CUDA_EACH(NopToOnpBody)

// One block per row, summed in double (the rows are long: N*OH*OW).
__global__ void row_sums_kernel(const float* a, float* out, index_t cols) {
  const float* row = a + blockIdx.x * cols;
  double acc = 0.0;
  for (index_t k = threadIdx.x; k < cols; k += blockDim.x) acc += row[k];
  acc = block_sum(acc);
  if (threadIdx.x == 0) out[blockIdx.x] = static_cast<float>(acc);
}

void row_sums(const float* a, float* out, index_t rows, index_t cols) {
  if (rows <= 0) return;
  LAMINA_LAUNCH("conv2d_backward (grad_b)", static_cast<unsigned>(rows), kThreads, 0, static_cast<cudaStream_t>(stream()),
                row_sums_kernel)(a, out, cols);
  check_launch("conv2d_backward (grad_b)");
}

}  // namespace lamina::cuda
