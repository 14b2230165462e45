// norm.cu: batch_norm and batch_norm_backward (lamina/cuda/norm.h), x viewed as (N, C, S).
//
// One block per channel (block_per_row_plan: the blocks loop over channels when C exceeds the
// grid). A block walks its channel's n = N * S values as the flat sequence k = i S + s, thread t
// taking k = t, t + 256, ... (neighbouring threads read neighbouring addresses within a row).
//
// - batch_norm: one pass for the statistics, each thread keeping a Welford (count, mean, M2) in
//   float, merged across the warp by shuffles and across the warps by thread 0 with Chan's
//   formula in double, so the variance always comes from deviations about a mean, never from
//   E[x^2] - E[x]^2. Thread 0 settles the channel (mean, invstd, the running statistics) and
//   shares (mean, invstd, weight, bias) through shared memory; then a pass writes
//   y = (x - mean) invstd weight + bias. Evaluation mode skips the statistics pass.
// - batch_norm_backward: one pass summing g and g (x - mean) per thread in double, reduced across
//   the block the same way; thread 0 writes grad_bias, grad_weight and shares the constants of
//   grad_x = k (g - cg) - c2 (x - mean); then a pass writes grad_x.
// Each value of a channel is read by the block that writes that channel's outputs, after its
// reduction: y / grad_x may therefore be x itself.
#include "launch.cuh"
#include "lamina/cuda/norm.h"

namespace lamina::cuda {
namespace {

constexpr int kBnThreads = kEachThreads;  // block_per_row_plan's block
constexpr int kBnWarps = kBnThreads / 32;
constexpr unsigned kFull = 0xffffffffu;

// f(offset) for the values of the channel starting at `base` that this thread takes: flat
// k = threadIdx.x + j 256 < N S, at offset i C S + s with k = i S + s (S >= 1 when N S > 0).
template <class F>
__device__ __forceinline__ void for_channel(index_t n, index_t S, index_t CS, index_t base, F&& f) {
  if (n <= 0) return;
  const index_t di = kBnThreads / S, ds = kBnThreads % S;
  index_t i = threadIdx.x / S, s = threadIdx.x % S;
  for (index_t k = threadIdx.x; k < n; k += kBnThreads) {
    f(base + i * CS + s);
    i += di;
    s += ds;
    if (s >= S) {
      s -= S;
      ++i;
    }
  }
}

// Chan et al.: (n, mean, m2) <- the moments of the union with (nb, mb, m2b).
__device__ __forceinline__ void merge(double& n, double& mean, double& m2, double nb, double mb, double m2b) {
  const double n1 = n + nb;
  if (n1 == 0.0) return;
  const double d = mb - mean, fb = nb / n1;
  mean += d * fb;
  m2 += m2b + d * d * n * fb;
  n = n1;
}

__global__ void batch_norm_kernel(const float* x, const float* weight, const float* bias, float* running_mean,
                                  float* running_var, float* y, float* mean, float* invstd, index_t N, index_t C,
                                  index_t S, bool training, double momentum, double eps) {
  __shared__ double part[3][kBnWarps];
  __shared__ float coef[4];  // mean, invstd, weight, bias of the channel
  const index_t CS = C * S, n = N * S;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (index_t c = blockIdx.x; c < C; c += gridDim.x) {
    const index_t base = c * S;
    if (training) {
      int cnt = 0;
      float mu = 0.0f, m2 = 0.0f;
      for_channel(n, S, CS, base, [&](index_t o) {
        const float v = x[o];
        ++cnt;
        const float d = v - mu;
        mu += d / static_cast<float>(cnt);
        m2 += d * (v - mu);
      });
      double wn = cnt, wm = mu, wm2 = m2;
      for (int o = 16; o > 0; o >>= 1) {
        const double nb = __shfl_down_sync(kFull, wn, o), mb = __shfl_down_sync(kFull, wm, o),
                     m2b = __shfl_down_sync(kFull, wm2, o);
        merge(wn, wm, wm2, nb, mb, m2b);
      }
      if (lane == 0) {
        part[0][warp] = wn;
        part[1][warp] = wm;
        part[2][warp] = wm2;
      }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      double mu = 0.0, var = 0.0;
      if (training) {
        double tn = 0.0, tm2 = 0.0;
        for (int w = 0; w < kBnWarps; ++w) merge(tn, mu, tm2, part[0][w], part[1][w], part[2][w]);
        var = tm2 / tn;
        if (running_mean != nullptr) {
          running_mean[c] = static_cast<float>((1.0 - momentum) * running_mean[c] + momentum * mu);
          running_var[c] = static_cast<float>((1.0 - momentum) * running_var[c] + momentum * var * (tn / (tn - 1.0)));
        }
      } else {
        mu = running_mean[c];
        var = running_var[c];
      }
      const float m = static_cast<float>(mu), is = static_cast<float>(1.0 / sqrt(var + eps));
      mean[c] = m;
      invstd[c] = is;
      coef[0] = m;
      coef[1] = is;
      coef[2] = weight != nullptr ? weight[c] : 1.0f;
      coef[3] = bias != nullptr ? bias[c] : 0.0f;
    }
    __syncthreads();
    const float m = coef[0], is = coef[1], w = coef[2], b = coef[3];
    for_channel(n, S, CS, base, [&](index_t o) { y[o] = fmaf((x[o] - m) * is, w, b); });
  }
}

__global__ void batch_norm_backward_kernel(const float* grad_y, const float* x, const float* weight,
                                           const float* mean, const float* invstd, float* grad_x, float* grad_weight,
                                           float* grad_bias, index_t N, index_t C, index_t S, bool training) {
  __shared__ double part[2][kBnWarps];
  __shared__ float coef[4];  // mean, k, cg, c2 of the channel
  const index_t CS = C * S, n = N * S;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (index_t c = blockIdx.x; c < C; c += gridDim.x) {
    const index_t base = c * S;
    const float m = mean[c];
    double sg = 0.0, sgx = 0.0;
    for_channel(n, S, CS, base, [&](index_t o) {
      const float g = grad_y[o];
      sg += g;
      sgx += g * (x[o] - m);
    });
    for (int o = 16; o > 0; o >>= 1) {
      sg += __shfl_down_sync(kFull, sg, o);
      sgx += __shfl_down_sync(kFull, sgx, o);
    }
    if (lane == 0) {
      part[0][warp] = sg;
      part[1][warp] = sgx;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      double tg = 0.0, tgx = 0.0;
      for (int w = 0; w < kBnWarps; ++w) {
        tg += part[0][w];
        tgx += part[1][w];
      }
      const double is = invstd[c], gw = tgx * is, k = (weight != nullptr ? weight[c] : 1.0) * is;
      grad_bias[c] = static_cast<float>(tg);
      grad_weight[c] = static_cast<float>(gw);
      coef[0] = m;
      coef[1] = static_cast<float>(k);
      coef[2] = training ? static_cast<float>(tg / static_cast<double>(n)) : 0.0f;
      coef[3] = training ? static_cast<float>(k * is * gw / static_cast<double>(n)) : 0.0f;
    }
    __syncthreads();
    const float mc = coef[0], k = coef[1], cg = coef[2], c2 = coef[3];
    if (training)
      for_channel(n, S, CS, base, [&](index_t o) { grad_x[o] = k * (grad_y[o] - cg) - c2 * (x[o] - mc); });
    else
      for_channel(n, S, CS, base, [&](index_t o) { grad_x[o] = k * grad_y[o]; });
  }
}

LaunchPlan channel_plan(index_t C) {
  const LaunchPlan p = block_per_row_plan(C);
  static_assert(kBnThreads == kEachThreads, "the kernels' reductions assume block_per_row_plan's block");
  return p;
}

}  // namespace

void batch_norm(const float* x, const float* weight, const float* bias, float* running_mean, float* running_var,
                float* y, float* mean, float* invstd, index_t N, index_t C, index_t S, bool training,
                double momentum, double eps) {
  if (C <= 0) return;
  const LaunchPlan p = channel_plan(C);
  LAMINA_LAUNCH("batch_norm", p.grid[0], p.block[0], 0, static_cast<cudaStream_t>(stream()), batch_norm_kernel)(
      x, weight, bias, running_mean, running_var, y, mean, invstd, N, C, S, training, momentum, eps);
  check_launch("batch_norm");
}

void batch_norm_backward(const float* grad_y, const float* x, const float* weight, const float* mean,
                         const float* invstd, float* grad_x, float* grad_weight, float* grad_bias, index_t N,
                         index_t C, index_t S, bool training) {
  if (C <= 0) return;
  const LaunchPlan p = channel_plan(C);
  LAMINA_LAUNCH("batch_norm_backward", p.grid[0], p.block[0], 0, static_cast<cudaStream_t>(stream()),
                batch_norm_backward_kernel)(grad_y, x, weight, mean, invstd, grad_x, grad_weight, grad_bias, N, C, S,
                                            training);
  check_launch("batch_norm_backward");
}

}  // namespace lamina::cuda
