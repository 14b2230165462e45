// conv.cu: conv2d and conv2d_backward (lamina/cuda/conv.h): im2col (one thread per column entry),
// the GEMMs of gemm.cu (bias, ReLU and the NCHW store fused into the forward one), the permute of
// grad_y, grad_b as row sums (one block per row, in double) and col2im, which gathers (one thread
// per input pixel, no atomics): pixel (h, w) receives every column entry whose window offset
// (i, j) lands on it.
#include "launch.cuh"
#include "lamina/cuda/conv.h"
#include "lamina/cuda/device.h"
#include "lamina/cuda/gemm.h"
#include "lamina/cuda/launch_plan.h"

namespace lamina::cuda {
namespace {

// The column matrix's rows (C*kH*kW) and an output plane's cells (OH*OW).
LAMINA_HD index_t rows(const Conv2dShape& g) { return g.C * g.kH * g.kW; }
LAMINA_HD index_t plane(const Conv2dShape& g) { return g.OH * g.OW; }

// The geometry in the index type of the launch (int32 where fits_index32 holds, else index_t).
template <class I>
struct ConvIdx {
  I N, C, H, W, kH, kW, sh, sw, ph, pw, dh, dw, OH, OW;
  static ConvIdx of(const Conv2dShape& g) {
    return ConvIdx{I(g.N), I(g.C), I(g.H), I(g.W), I(g.kH), I(g.kW), I(g.sh), I(g.sw), I(g.ph), I(g.pw),
                   I(g.dh), I(g.dw), I(g.OH), I(g.OW)};
  }
  __device__ I plane() const { return OH * OW; }
};

template <class I>
struct Im2colBody {
  const float* x;
  float* cols;
  ConvIdx<I> g;
  __device__ void operator()(I t) const {
    const I NP = g.N * g.plane();
    const I col = t % NP, row = t / NP;
    const I ow = col % g.OW, oh = (col / g.OW) % g.OH, n = col / g.plane();
    const I j = row % g.kW, i = (row / g.kW) % g.kH, c = row / (g.kW * g.kH);
    const I ih = oh * g.sh - g.ph + i * g.dh, iw = ow * g.sw - g.pw + j * g.dw;
    cols[t] = (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W) ? x[((n * g.C + c) * g.H + ih) * g.W + iw] : 0.0f;
  }
};

template <class I>
struct Col2imBody {
  const float* cols;  // (K, N*P)
  float* grad_x;      // (N, C, H, W)
  ConvIdx<I> g;
  __device__ void operator()(I t) const {
    const I w = t % g.W, h = (t / g.W) % g.H, c = (t / (g.W * g.H)) % g.C, n = t / (g.W * g.H * g.C);
    const I NP = g.N * g.plane();
    float acc = 0.0f;
    for (I i = 0; i < g.kH; ++i) {
      const I hp = h + g.ph - i * g.dh;  // = oh * sh
      if (hp < 0 || hp % g.sh) continue;
      const I oh = hp / g.sh;
      if (oh >= g.OH) continue;
      for (I j = 0; j < g.kW; ++j) {
        const I wp = w + g.pw - j * g.dw;
        if (wp < 0 || wp % g.sw) continue;
        const I ow = wp / g.sw;
        if (ow >= g.OW) continue;
        acc += cols[((c * g.kH + i) * g.kW + j) * NP + n * g.plane() + oh * g.OW + ow];
      }
    }
    grad_x[t] = acc;
  }
};

// (N, O, P) -> (O, N, P): grad_y as the GEMMs want it.
template <class I>
struct NopToOnpBody {
  const float* src;
  float* dst;
  I N, O, P;
  __device__ void operator()(I t) const {  // t indexes dst
    const I p = t % P, n = (t / P) % N, o = t / (P * N);
    dst[t] = src[(n * O + o) * P + p];
  }
};

// The convolution's element-wise passes run in 32-bit arithmetic when every array they index (x,
// the columns, grad_x, grad_y) has few enough elements for fits_index32.
bool narrow_conv(const Conv2dShape& g) {
  const index_t K = rows(g), NP = g.N * plane(g);
  return fits_index32(std::max({K * NP, g.N * g.C * g.H * g.W, g.N * g.O * plane(g)}));
}

// One block per row (the blocks loop when there are more rows than block_per_row_plan's cap),
// summed in double (the rows are long: N*OH*OW).
__global__ void row_sums_kernel(const float* a, float* out, index_t n_rows, index_t cols) {
  for (index_t r = blockIdx.x; r < n_rows; r += gridDim.x) {
    const float* row = a + r * cols;
    double acc = 0.0;
    for (index_t k = threadIdx.x; k < cols; k += blockDim.x) acc += row[k];
    acc = block_sum(acc);
    if (threadIdx.x == 0) out[r] = static_cast<float>(acc);
    __syncthreads();  // block_sum's shared partials are reused by the next row
  }
}

void row_sums(const float* a, float* out, index_t n_rows, index_t cols) {
  if (n_rows <= 0) return;
  const LaunchPlan p = block_per_row_plan(n_rows);
  LAMINA_LAUNCH("conv2d_backward (grad_b)", p.grid[0], p.block[0], 0, static_cast<cudaStream_t>(stream()),
                row_sums_kernel)(a, out, n_rows, cols);
  check_launch("conv2d_backward (grad_b)");
}

}  // namespace

// y (N, O, OH, OW) = conv(x, w) + b [ReLU]: im2col (K, N*P) then one GEMM whose epilogue adds
// the bias per row and stores NCHW.
void conv2d(const Conv2dShape& g, const float* x, const float* w, const float* b, bool relu, float* y) {
  const index_t K = rows(g), NP = g.N * plane(g);
  if (NP == 0 || g.O == 0) return;
  TempBuffer cols(sizeof(float) * K * NP);
  const bool narrow = narrow_conv(g);
  if (narrow) launch_each("conv2d (im2col)", Im2colBody<int>{x, cols.f(), ConvIdx<int>::of(g)}, static_cast<int>(K * NP));
  else launch_each("conv2d (im2col)", Im2colBody<index_t>{x, cols.f(), ConvIdx<index_t>::of(g)}, K * NP);
  gemm(GemmArgs{w, cols.f(), y, b, g.O, NP, K, K, NP, NP, false, false, b ? kBiasPerRow : kNoBias, relu, plane(g)});
}

// grad_w (O, K) = gy @ cols^T, grad_b = row sums of gy, grad_x = col2im(w^T @ gy) when wanted;
// gy (O, N*P) is grad_y permuted. With no output cell, the gradients are zero.
void conv2d_backward(const Conv2dShape& g, const float* x, const float* w, const float* grad_y, float* grad_x,
                     float* grad_w, float* grad_b) {
  const index_t K = rows(g), NP = g.N * plane(g);
  if (NP == 0) {
    memset_async(grad_w, 0, sizeof(float) * g.O * K);
    memset_async(grad_b, 0, sizeof(float) * g.O);
    if (grad_x) memset_async(grad_x, 0, sizeof(float) * g.N * g.C * g.H * g.W);
    return;
  }
  TempBuffer gy(sizeof(float) * g.O * NP);
  const bool narrow = narrow_conv(g);
  const index_t n_gy = g.N * g.O * plane(g), n_x = g.N * g.C * g.H * g.W;
  if (narrow)
    launch_each("conv2d_backward (permute grad_y)", NopToOnpBody<int>{grad_y, gy.f(), int(g.N), int(g.O), int(plane(g))},
                static_cast<int>(n_gy));
  else
    launch_each("conv2d_backward (permute grad_y)", NopToOnpBody<index_t>{grad_y, gy.f(), g.N, g.O, plane(g)}, n_gy);
  row_sums(gy.f(), grad_b, g.O, NP);
  TempBuffer cols(sizeof(float) * K * NP);
  if (narrow)
    launch_each("conv2d_backward (im2col)", Im2colBody<int>{x, cols.f(), ConvIdx<int>::of(g)}, static_cast<int>(K * NP));
  else
    launch_each("conv2d_backward (im2col)", Im2colBody<index_t>{x, cols.f(), ConvIdx<index_t>::of(g)}, K * NP);
  gemm(GemmArgs{gy.f(), cols.f(), grad_w, nullptr, g.O, K, NP, NP, NP, K, false, true, kNoBias, false, 0});
  if (grad_x) {  // grad_cols (K, NP) = w^T (K, O) @ gy (O, NP), into the cols buffer
    gemm(GemmArgs{w, gy.f(), cols.f(), nullptr, K, NP, g.O, K, NP, NP, true, false, kNoBias, false, 0});
    if (narrow)
      launch_each("conv2d_backward (col2im)", Col2imBody<int>{cols.f(), grad_x, ConvIdx<int>::of(g)}, static_cast<int>(n_x));
    else
      launch_each("conv2d_backward (col2im)", Col2imBody<index_t>{cols.f(), grad_x, ConvIdx<index_t>::of(g)}, n_x);
  }
}

}  // namespace lamina::cuda
