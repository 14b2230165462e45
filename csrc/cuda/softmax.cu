// softmax.cu: softmax, log_softmax, softmax_backward and softmax_cross_entropy
// (lamina/cuda/softmax.h); cross-entropy writes the gradient and sums the rows' losses (in double)
// in one pass.
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

namespace {

// One thread per row (rows along an inner axis): row r of outer*inner starts at
// (r / inner) * K * inner + r % inner.
struct Rows {
  index_t outer, K, inner;
  LAMINA_HD index_t base(index_t r) const { return (r / inner) * K * inner + r % inner; }
  LAMINA_HD index_t count() const { return outer * inner; }
};

__device__ float row_max(const float* x, index_t K, index_t st) {
  float m = x[0];
  for (index_t k = 1; k < K; ++k) {
    const float v = x[k * st];
    if (v > m || v != v) m = v;
    if (m != m) break;
  }
  return m;
}

struct SoftmaxBody {
  const float* x;
  float* y;
  Rows rows;
  bool log;
  __device__ void operator()(index_t r) const {
    const index_t b = rows.base(r), K = rows.K, st = rows.inner;
    const float m = row_max(x + b, K, st);
    float s = 0.0f;
    for (index_t k = 0; k < K; ++k) s += expf(x[b + k * st] - m);
    if (log) {
      const float ls = logf(s);
      for (index_t k = 0; k < K; ++k) y[b + k * st] = (x[b + k * st] - m) - ls;
    } else {
      for (index_t k = 0; k < K; ++k) y[b + k * st] = expf(x[b + k * st] - m) / s;
    }
  }
};

struct SoftmaxBackwardBody {
  const float* grad_y;
  const float* y;
  float* grad_x;
  Rows rows;
  __device__ void operator()(index_t r) const {
    const index_t b = rows.base(r), K = rows.K, st = rows.inner;
    float dot = 0.0f;
    for (index_t k = 0; k < K; ++k) dot += grad_y[b + k * st] * y[b + k * st];
    for (index_t k = 0; k < K; ++k) grad_x[b + k * st] = y[b + k * st] * (grad_y[b + k * st] - dot);
  }
};

// softmax_cross_entropy's arguments: logits (N, K) contiguous, labels (N,) int32 or int64; the
// kernel writes grad (N, K) = (softmax - onehot) / N and records a label outside [0, K) in *bad
// (its row's grad and loss are then unspecified).
template <class L>
struct XentArgs {
  const float* logits;
  const L* labels;
  float* grad;
  unsigned long long* bad;
  index_t K;
  float inv_n;
};

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
__global__ void softmax_xent_rows_kernel(XentArgs<L> p, index_t rows, double* partials) {
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


template <class L>
void launch_xent(const XentArgs<L>& b, index_t n) {
  const char* name = "softmax_cross_entropy";
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

void softmax_any(const char* name, const float* x, float* y, index_t outer, index_t K, index_t inner, bool log) {
  const index_t n = outer * inner;
  if (n <= 0 || K <= 0) return;
  if (inner != 1) return launch_each(name, SoftmaxBody{x, y, Rows{outer, K, inner}, log}, n);
  check_row_length(K, name);
  const LaunchPlan p = warp_per_row_plan(n);
  LAMINA_LAUNCH(name, p.grid[0], p.block[0], 0, static_cast<cudaStream_t>(stream()), softmax_rows_kernel)(
      x, y, n, static_cast<int>(K), log);
  check_launch(name);
}

}  // namespace

void softmax(const float* x, float* y, index_t outer, index_t K, index_t inner) {
  softmax_any("softmax", x, y, outer, K, inner, false);
}

void log_softmax(const float* x, float* y, index_t outer, index_t K, index_t inner) {
  softmax_any("log_softmax", x, y, outer, K, inner, true);
}

void softmax_backward(const float* grad_y, const float* y, float* grad_x, index_t outer, index_t K, index_t inner) {
  const char* name = "softmax_backward";
  const index_t n = outer * inner;
  if (n <= 0 || K <= 0) return;
  if (inner != 1) return launch_each(name, SoftmaxBackwardBody{grad_y, y, grad_x, Rows{outer, K, inner}}, n);
  check_row_length(K, name);
  const LaunchPlan p = warp_per_row_plan(n);
  LAMINA_LAUNCH(name, p.grid[0], p.block[0], 0, static_cast<cudaStream_t>(stream()), softmax_backward_rows_kernel)(
      grad_y, y, grad_x, n, static_cast<int>(K));
  check_launch(name);
}

double softmax_cross_entropy(const float* logits, const void* labels, bool labels_i64, float* grad, index_t N,
                             index_t K, index_t* bad) {
  if (K == 0) {  // every label is out of range [0, 0): the first row's, and no logit to read
    *bad = N > 0 ? 0 : -1;
    return std::nan("");
  }
  reset_bad();
  const float inv_n = 1.0f / static_cast<float>(N);
  unsigned long long* flag = scratch().bad;
  if (labels_i64)
    launch_xent(XentArgs<std::int64_t>{logits, static_cast<const std::int64_t*>(labels), grad, flag, K, inv_n},
                N);
  else
    launch_xent(XentArgs<std::int32_t>{logits, static_cast<const std::int32_t*>(labels), grad, flag, K, inv_n},
                N);
  return read_result(bad) / static_cast<double>(N);
}

}  // namespace lamina::cuda
