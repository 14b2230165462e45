// array.cu: fill and copy over any strides, gather_rows (a check pass, then the copy), argmax,
// all_finite, dot.
#include "launch.cuh"
#include "lamina/cuda/array.h"
#include "lamina/cuda/launch_plan.h"

namespace lamina::cuda {
LAMINA_CUDA_EACH(FillBody)
LAMINA_CUDA_EACH(CopyBody)
LAMINA_CUDA_EACH(IndexCheckBody<std::int64_t>)
LAMINA_CUDA_EACH(IndexCheckBody<std::int32_t>)
LAMINA_CUDA_EACH(GatherRowsBody<std::int64_t>)
LAMINA_CUDA_EACH(GatherRowsBody<std::int32_t>)
LAMINA_CUDA_SUM(NonFiniteBody)
LAMINA_CUDA_SUM(DotBody)

namespace {

// (value, index) of a lane's candidate: the first maximum, a NaN counting as the maximum (the
// first NaN wins); index kNone for a lane without elements.
constexpr long long kNone = 0x7fffffffffffffffll;
__device__ __forceinline__ bool better(float v, long long i, float bv, long long bi) {
  const bool vn = v != v, bn = bv != bv;
  if (vn || bn) return vn && (!bn || i < bi);
  return v > bv || (v == bv && i < bi);
}

// One warp per row of x (rows, K) contiguous: the lanes stride over the row, then combine.
__global__ void argmax_rows_kernel(const float* x, std::int64_t* out, index_t rows, int K) {
  const int lane = threadIdx.x & 31;
  const index_t warp0 = (static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const index_t warps = (static_cast<index_t>(gridDim.x) * blockDim.x) >> 5;
  for (index_t r = warp0; r < rows; r += warps) {  // the same rows for every lane of the warp
    const float* row = x + r * K;
    float best = -INFINITY;
    long long bi = kNone;
    for (int k = lane; k < K; k += 32) {
      const float v = row[k];
      if (better(v, k, best, bi)) {
        best = v;
        bi = k;
      }
    }
    for (int o = 16; o > 0; o >>= 1) {
      const float v = __shfl_xor_sync(0xffffffffu, best, o);
      const long long i = __shfl_xor_sync(0xffffffffu, bi, o);
      if (better(v, i, best, bi)) {
        best = v;
        bi = i;
      }
    }
    if (lane == 0) out[r] = bi;
  }
}

}  // namespace

// Rows along the last axis (inner == 1): one warp per row (coalesced reads); along another axis
// one thread per row (neighbouring threads read neighbouring rows).
void launch(const char* name, const ArgmaxBody& b, index_t n) {
  if (b.inner != 1) return launch_each(name, b, n);
  if (b.K >= (index_t(1) << 31))
    throw Error(std::string("lamina.cuda: ") + name + ": rows of 2^31 or more elements are not supported");
  const LaunchPlan p = warp_per_row_plan(n);
  LAMINA_LAUNCH(name, p.grid[0], p.block[0], 0, static_cast<cudaStream_t>(stream()), argmax_rows_kernel)(
      b.x, b.out, n, static_cast<int>(b.K));
  check_launch(name);
}

}  // namespace lamina::cuda
