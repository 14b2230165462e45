// conv.cu: the device launches of convolution's pieces (im2col, col2im, the permute of grad_y,
// grad_b as row sums); lamina/cuda/ops.h puts them together with the GEMMs.
#include "launch.cuh"
#include "lamina/cuda/conv.h"
#include "lamina/cuda/launch_plan.h"

namespace lamina::cuda {

LAMINA_CUDA_EACH(Im2colBody)
LAMINA_CUDA_EACH(Col2imBody)
LAMINA_CUDA_EACH(NopToOnpBody)

// One block per row (the blocks loop when there are more rows than block_per_row_plan's cap),
// summed in double (the rows are long: N*OH*OW).
__global__ void row_sums_kernel(const float* a, float* out, index_t rows, index_t cols) {
  for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* row = a + r * cols;
    double acc = 0.0;
    for (index_t k = threadIdx.x; k < cols; k += blockDim.x) acc += row[k];
    acc = block_sum(acc);
    if (threadIdx.x == 0) out[r] = static_cast<float>(acc);
    __syncthreads();  // block_sum's shared partials are reused by the next row
  }
}

void row_sums(const float* a, float* out, index_t rows, index_t cols) {
  if (rows <= 0) return;
  DeviceGuard guard;
  const LaunchPlan p = block_per_row_plan(rows);
  LAMINA_LAUNCH("conv2d_backward (grad_b)", p.grid[0], p.block[0], 0, static_cast<cudaStream_t>(stream()),
                row_sums_kernel)(a, out, rows, cols);
  check_launch("conv2d_backward (grad_b)");
}

}  // namespace lamina::cuda
