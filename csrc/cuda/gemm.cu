// gemm.cu: our tiled SGEMM with the bias / ReLU / NCHW epilogue fused (lamina/cuda/gemm.h).
//
// A block computes a BM x BN tile of C, stepping over K in BK slices staged in shared memory;
// each of its 256 threads accumulates a TM x TN sub-tile in registers. Three shapes: 64x64
// (general), 16x128 (few rows: the conv GEMMs, M = output channels) and 128x16 (few columns).
// The tiles are numbered along gridDim.x (row-major over the tiles of C; a block loops over
// tiles when there are more than the grid holds), so no grid dimension bounds M or N. When the
// tiles cannot fill the device and K is long (conv2d_backward's grad_w: M = O, N = C*kH*kW,
// K = N*OH*OW), the K range is split over gridDim.z; each split writes its partial tile, and
// GemmFinishBody sums them and applies the epilogue. gemm_plan (lamina/cuda/launch_plan.h)
// chooses all of it.
// cuBLAS (run-time loaded) takes large products in the "auto" path, then the epilogue runs
// as its own pass (GemmFinishBody with one partial).
#include <algorithm>

#include "launch.cuh"
#include "lamina/cuda/cublas.h"
#include "lamina/cuda/gemm.h"
#include "lamina/cuda/launch_plan.h"

namespace lamina::cuda {

int& gemm_path() {
  static int path = 0;
  return path;
}
bool& allow_tf32() {
  static bool v = false;
  return v;
}

namespace {

constexpr int BK = kGemmBK;

// C's store index (gemm.h's c_index) in the launch's index type I: int where fits_index32 holds
// for C and the partial products, else index_t.
template <class I>
struct CIndex {
  I M, N, ldc, P;  // P: nchw_p
  static CIndex of(const GemmArgs& g) { return CIndex{I(g.M), I(g.N), I(g.ldc), I(g.nchw_p)}; }
  __device__ I operator()(I m, I n) const { return P > 0 ? (n / P) * M * P + m * P + n % P : m * ldc + n; }
};

// One thread per element of C: K = 0 (C = the epilogue of 0).
template <class I>
struct GemmZeroKBody {
  GemmArgs g;
  CIndex<I> c;
  __device__ void operator()(I t) const {
    const I m = t / c.N, n = t % c.N;
    g.C[c(m, n)] = g.epilogue(m, n, 0.0f);
  }
};

// After a split-K product or cuBLAS: part (S, M, N) partial products -> the epilogue into C.
template <class I>
struct GemmFinishBody {
  GemmArgs g;
  CIndex<I> c;
  const float* part;
  I S;
  __device__ void operator()(I t) const {
    const I m = t / c.N, n = t % c.N;
    float acc = 0.0f;
    for (I s = 0; s < S; ++s) acc += part[s * c.M * c.N + t];
    g.C[c(m, n)] = g.epilogue(m, n, acc);
  }
};

// The element-wise passes over C (and S partial products of its size).
bool narrow_c(const GemmArgs& g, index_t S) {
  const index_t c_extent = g.nchw_p > 0 ? g.M * g.N : (g.M - 1) * g.ldc + g.N;
  return fits_index32(std::max(S * g.M * g.N, c_extent));
}
void finish(const char* name, const GemmArgs& g, const float* part, index_t S) {
  if (narrow_c(g, S))
    launch_each(name, GemmFinishBody<int>{g, CIndex<int>::of(g), part, int(S)}, static_cast<int>(g.M * g.N));
  else
    launch_each(name, GemmFinishBody<index_t>{g, CIndex<index_t>::of(g), part, S}, g.M * g.N);
}

template <int BM, int BN, int TM, int TN>
__global__ void __launch_bounds__(256) sgemm_tiled(GemmArgs g, float* part, index_t k_chunk, index_t tiles_n,
                                                   index_t tiles) {
  static_assert((BM / TM) * (BN / TN) == 256, "256 threads");
  __shared__ float As[BK][BM + 1];
  __shared__ float Bs[BK][BN + 1];
  const int tid = threadIdx.x;
  const int tx = tid % (BN / TN), ty = tid / (BN / TN);
  const index_t k_begin = static_cast<index_t>(blockIdx.z) * k_chunk;
  const index_t k_end = g.K < k_begin + k_chunk ? g.K : k_begin + k_chunk;
  // Every thread of the block walks the same tiles, so the barriers below stay uniform.
  for (index_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const index_t m0 = (tile / tiles_n) * BM, n0 = (tile % tiles_n) * BN;
    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

    for (index_t k0 = k_begin; k0 < k_end; k0 += BK) {
      // Stage A (BM x BK) and B (BK x BN); the index order follows the memory order of each
      // operand so that neighbouring threads read neighbouring addresses.
      for (int e = tid; e < BM * BK; e += 256) {
        const int kk = g.ta ? e / BM : e % BK, mm = g.ta ? e % BM : e / BK;
        const index_t m = m0 + mm, k = k0 + kk;
        As[kk][mm] = (m < g.M && k < k_end) ? g.a(m, k) : 0.0f;
      }
      for (int e = tid; e < BK * BN; e += 256) {
        const int kk = g.tb ? e % BK : e / BN, nn = g.tb ? e / BK : e % BN;
        const index_t n = n0 + nn, k = k0 + kk;
        Bs[kk][nn] = (n < g.N && k < k_end) ? g.b(k, n) : 0.0f;
      }
      __syncthreads();
#pragma unroll
      for (int kk = 0; kk < BK; ++kk) {
        float a[TM], b[TN];
#pragma unroll
        for (int i = 0; i < TM; ++i) a[i] = As[kk][ty * TM + i];
#pragma unroll
        for (int j = 0; j < TN; ++j) b[j] = Bs[kk][tx + j * (BN / TN)];
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
          for (int j = 0; j < TN; ++j) acc[i][j] += a[i] * b[j];
      }
      __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < TM; ++i) {
      const index_t m = m0 + ty * TM + i;
      if (m >= g.M) continue;
#pragma unroll
      for (int j = 0; j < TN; ++j) {
        const index_t n = n0 + tx + j * (BN / TN);  // columns strided by the thread count: coalesced stores
        if (n >= g.N) continue;
        if (part) part[static_cast<index_t>(blockIdx.z) * g.M * g.N + m * g.N + n] = acc[i][j];
        else g.C[g.c_index(m, n)] = g.epilogue(m, n, acc[i][j]);
      }
    }
  }
}

int device_sms() {
  static int sms = [] {
    int v = 0;
    if (cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, device_id()) != cudaSuccess) {
      cudaGetLastError();
      v = 80;
    }
    return v;
  }();
  return sms;
}

template <int BM, int BN, int TM, int TN>
void run_tiled(const GemmArgs& g, const GemmPlan& p) {
  auto st = static_cast<cudaStream_t>(stream());
  const dim3 grid(p.launch.grid[0], p.launch.grid[1], p.launch.grid[2]);
  const index_t tiles = p.tiles_m * p.tiles_n;
  if (p.splits == 1) {
    LAMINA_LAUNCH("gemm (sgemm_tiled)", grid, 256, 0, st, sgemm_tiled<BM, BN, TM, TN>)(g, nullptr, p.k_chunk,
                                                                                       p.tiles_n, tiles);
    check_launch("gemm (sgemm_tiled)");
    return;
  }
  TempBuffer part(sizeof(float) * p.splits * g.M * g.N);
  LAMINA_LAUNCH("gemm (sgemm_tiled, split K)", grid, 256, 0, st, sgemm_tiled<BM, BN, TM, TN>)(g, part.f(), p.k_chunk,
                                                                                              p.tiles_n, tiles);
  check_launch("gemm (sgemm_tiled, split K)");
  finish("gemm (split-K sum + epilogue)", g, part.f(), p.splits);
}

}  // namespace

void gemm(const GemmArgs& g) {
  if (g.M <= 0 || g.N <= 0) return;
  if (g.K == 0) {  // C = epilogue(0)
    if (narrow_c(g, 1)) launch_each("gemm (K = 0)", GemmZeroKBody<int>{g, CIndex<int>::of(g)}, static_cast<int>(g.M * g.N));
    else launch_each("gemm (K = 0)", GemmZeroKBody<index_t>{g, CIndex<index_t>::of(g)}, g.M * g.N);
    return;
  }
  const double work = double(g.M) * double(g.N) * double(g.K);
  bool use_cublas = cublas::loaded() &&
                    (gemm_path() == 2 || (gemm_path() == 0 && work >= double(1 << 22) && std::min(g.M, g.N) >= 64));
  if (use_cublas && std::max({g.M, g.N, g.K, g.lda, g.ldb, g.ldc}) >= (index_t(1) << 31)) use_cublas = false;
  if (use_cublas) use_cublas = cublas::usable();  // creates the handle; false (and why) if that fails
  if (use_cublas) {
    const bool plain = g.bias_mode == kNoBias && !g.relu && g.nchw_p == 0;
    if (plain) {
      cublas::sgemm(g.ta, g.tb, g.M, g.N, g.K, g.A, g.lda, g.B, g.ldb, g.C, g.ldc, allow_tf32());
      return;
    }
    TempBuffer tmp(sizeof(float) * g.M * g.N);
    cublas::sgemm(g.ta, g.tb, g.M, g.N, g.K, g.A, g.lda, g.B, g.ldb, tmp.f(), g.N, allow_tf32());
    finish("gemm (epilogue after cuBLAS)", g, tmp.f(), 1);
    return;
  }
  const GemmPlan p = gemm_plan(g.M, g.N, g.K, device_sms());
  if (p.tile == kTile16x128) run_tiled<16, 128, 2, 4>(g, p);
  else if (p.tile == kTile128x16) run_tiled<128, 16, 4, 2>(g, p);
  else run_tiled<64, 64, 4, 4>(g, p);
}

void matmul(const float* A, index_t lda, bool trans_a, const float* B, index_t ldb, bool trans_b, float* C, index_t M,
            index_t N, index_t K) {
  gemm(GemmArgs{A, B, C, nullptr, M, N, K, lda, ldb, N, trans_a, trans_b, kNoBias, false, 0});
}

void linear(const float* x, index_t ldx, const float* w, index_t ldw, const float* b, bool relu, float* y, index_t n,
            index_t o, index_t k) {
  gemm(GemmArgs{x, w, y, b, n, o, k, ldx, ldw, o, false, true, b ? kBiasPerColumn : kNoBias, relu, 0});
}

}  // namespace lamina::cuda
