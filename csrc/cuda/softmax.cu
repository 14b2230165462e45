// softmax.cu: softmax / log_softmax / softmax_backward and the losses: softmax cross-entropy
// (gradient and per-row loss in one pass, summed in double), mse, bce.
//
// Rows along the last axis (inner == 1, the common case: logits (N, K)) run one warp per row
// (warp_per_row_plan): the 32 lanes read neighbouring elements (coalesced), the row's maximum and
// sum are combined with shuffles. Rows along another axis (inner > 1) keep one thread per row,
// where neighbouring threads read neighbouring rows. Within a row, the column index is 32-bit
// (the launchers check K < 2^31).
#include "launch.cuh"
#include "lamina/cuda/launch_plan.h"
#include "lamina/cuda/softmax.h"

namespace lamina::cuda {

LAMINA_CUDA_SUM(MseBody)
LAMINA_CUDA_SUM(BceBody)

namespace {

constexpr unsigned kFull = 0xffffffffu;

// The maximum with the reference's NaN rule: a NaN anywhere in the row is the row's maximum.
__device__ __forceinline__ float nan_max(float a, float b) {
  if (a != a) return a;
  if (b != b) return b;
  return b > a ? b : a;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = nan_max(v, __shfl_xor_sync(kFull, v, o));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}

// The lanes' maximum of row x[0..K) and sum of exp(x - max), in every lane.
__device__ __forceinline__ void row_max_sum(const float* x, int K, int lane, float& m, float& s) {
  m = -INFINITY;
  for (int k = lane; k < K; k += 32) m = nan_max(m, x[k]);
  m = warp_max(m);
  s = 0.0f;
  for (int k = lane; k < K; k += 32) s += expf(x[k] - m);
  s = warp_sum(s);
}

// Every lane of a warp takes the same rows, so the shuffles have all 32 lanes.
#define LAMINA_WARP_ROWS(rows)                                                                 \
  const int lane = threadIdx.x & 31;                                                           \
  const index_t warp0 = (static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;   \
  const index_t warps = (static_cast<index_t>(gridDim.x) * blockDim.x) >> 5;                   \
  for (index_t r = warp0; r < (rows); r += warps)

__global__ void softmax_rows_kernel(const float* x, float* y, index_t rows, int K, bool log) {
  LAMINA_WARP_ROWS(rows) {
    const float* xr = x + r * K;
    float* yr = y + r * K;
    float m, s;
    row_max_sum(xr, K, lane, m, s);
    if (log) {
      const float ls = logf(s);
      for (int k = lane; k < K; k += 32) yr[k] = (xr[k] - m) - ls;
    } else {
      for (int k = lane; k < K; k += 32) yr[k] = expf(xr[k] - m) / s;
    }
  }
}

__global__ void softmax_backward_rows_kernel(const float* gy, const float* y, float* gx, index_t rows, int K) {
  LAMINA_WARP_ROWS(rows) {
    const index_t b = r * K;
    float dot = 0.0f;
    for (int k = lane; k < K; k += 32) dot += gy[b + k] * y[b + k];
    dot = warp_sum(dot);
    for (int k = lane; k < K; k += 32) gx[b + k] = y[b + k] * (gy[b + k] - dot);
  }
}

// Per row: grad = (softmax - onehot) / N and the loss -log softmax[label], summed over the
// block's rows in double into partials[blockIdx.x]; a label outside [0, K) is recorded in *bad.
template <class L>
__global__ void softmax_xent_rows_kernel(SoftmaxXentBody<L> p, index_t rows, double* partials) {
  __shared__ double warp_loss[kWarpRowsPerBlock];
  double acc = 0.0;  // lane 0's running loss
  const int K = static_cast<int>(p.K);
  LAMINA_WARP_ROWS(rows) {
    const float* x = p.logits + r * K;
    float* g = p.grad + r * K;
    const L lab = p.labels[r];
    const bool ok = lab >= 0 && static_cast<index_t>(lab) < p.K;
    if (!ok && lane == 0) record_bad(p.bad, r);
    float m, s;
    row_max_sum(x, K, lane, m, s);
    const float ls = logf(s);
    const int hit_k = ok ? static_cast<int>(lab) : -1;
    for (int k = lane; k < K; k += 32) {
      const float lp = (x[k] - m) - ls;
      g[k] = (expf(lp) - (k == hit_k ? 1.0f : 0.0f)) * p.inv_n;
    }
    if (lane == 0) acc -= ok ? static_cast<double>((x[hit_k] - m) - ls) : 0.0;
  }
  if (lane == 0) warp_loss[threadIdx.x >> 5] = acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    double sum = 0.0;
    for (int w = 0; w < kWarpRowsPerBlock; ++w) sum += warp_loss[w];
    partials[blockIdx.x] = sum;
  }
}

void check_row_length(index_t K, const char* name) {
  if (K >= (index_t(1) << 31))
    throw Error(std::string("lamina.cuda: ") + name + ": rows of 2^31 or more elements are not supported");
}

}  // namespace

void launch(const char* name, const SoftmaxBody& b, index_t n) {
  if (b.rows.inner != 1) return launch_each(name, b, n);
  check_row_length(b.rows.K, name);
  const LaunchPlan p = warp_per_row_plan(n);
  LAMINA_LAUNCH(name, p.grid[0], p.block[0], 0, static_cast<cudaStream_t>(stream()), softmax_rows_kernel)(
      b.x, b.y, n, static_cast<int>(b.rows.K), b.log);
  check_launch(name);
}

void launch(const char* name, const SoftmaxBackwardBody& b, index_t n) {
  if (b.rows.inner != 1) return launch_each(name, b, n);
  check_row_length(b.rows.K, name);
  const LaunchPlan p = warp_per_row_plan(n);
  LAMINA_LAUNCH(name, p.grid[0], p.block[0], 0, static_cast<cudaStream_t>(stream()), softmax_backward_rows_kernel)(
      b.grad_y, b.y, b.grad_x, n, static_cast<int>(b.rows.K));
  check_launch(name);
}

template <class L>
void launch_xent(const char* name, const SoftmaxXentBody<L>& b, index_t n) {
  check_row_length(b.K, name);
  Scratch& s = scratch();
  const LaunchPlan p = warp_per_row_plan(n);
  const unsigned blocks = std::min<unsigned>(p.grid[0], kReduceBlocks);  // one partial per block
  auto st = static_cast<cudaStream_t>(stream());
  LAMINA_LAUNCH(name, blocks, p.block[0], 0, st, softmax_xent_rows_kernel<L>)(b, n, s.partials);
  check_launch(name);
  LAMINA_LAUNCH(name, 1, kThreads, 0, st, sum_partials_kernel)(s.partials, static_cast<int>(blocks), s.result);
  check_launch(name);
}

void launch_sum(const char* name, const SoftmaxXentBody<std::int64_t>& b, index_t n) { launch_xent(name, b, n); }
void launch_sum(const char* name, const SoftmaxXentBody<std::int32_t>& b, index_t n) { launch_xent(name, b, n); }

}  // namespace lamina::cuda
