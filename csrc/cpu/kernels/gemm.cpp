// gemm.cpp: the BLIS-style SGEMM driver, compiled once per ISA.
//
//   C (M x N, ldc) = beta*C + op(A) (M x K) * op(B) (K x N) (+ bias) (ReLU)
//
// Loops (BLIS names): jc over NC columns of B, pc over KC of the depth, ic over MC rows of A
// (A block packed into MR-row slivers), jr over NR columns (B sliver packed once, on the first
// ic block, or read in place when it is a full row-major sliver and A fits in one block),
// ir over MR rows (micro-kernel). Threads each take a rectangle of C and run this serially
// with their own packing buffers; problems below a few MFLOP stay on one thread.
#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "lamina/gemm.h"
#include "sgemm_ukernel.h"
#include "workspace.h"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace lamina::cpu::LAMINA_ISA_NS {
namespace {

using namespace gemm_config;

using ukernel_fn = void (*)(index_t, const float*, const float*, index_t, float*, index_t, int,
                            const TileEpilogue&);

template <std::size_t... R>
constexpr auto make_ukernel_table(std::index_sequence<R...>) {
  return std::array<ukernel_fn, sizeof...(R)>{&sgemm_ukernel<int(R) + 1, MR, NV>...};
}
// kUkernel[m - 1] computes an m-row tile (1 <= m <= MR).
const auto kUkernel = make_ukernel_table(std::make_index_sequence<MR>{});

// A block (mc x kc at a, strides rs/cs) -> MR-row slivers, element (i, p) of sliver s at
// dst[s*MR*kc + p*MR + i]; rows past mc are zero.
void pack_a(index_t mc, index_t kc, const float* a, index_t rs, index_t cs, float* dst) {
  for (index_t ir = 0; ir < mc; ir += MR) {
    const index_t m = min_of<index_t>(MR, mc - ir);
    float* d = dst + ir * kc;
    const float* s = a + ir * rs;
    if (m < MR) std::memset(d, 0, sizeof(float) * MR * kc);
    if (rs == 1) {
      for (index_t p = 0; p < kc; ++p)
        for (index_t i = 0; i < m; ++i) d[p * MR + i] = s[p * cs + i];
    } else {
      for (index_t i = 0; i < m; ++i) {
        const float* row = s + i * rs;
        for (index_t p = 0; p < kc; ++p) d[p * MR + i] = row[p * cs];
      }
    }
  }
}

// B sliver (kc x nr at b, strides rs/cs) -> dst[p*NR + j]; columns past nr are zero.
void pack_b(index_t kc, index_t nr, const float* b, index_t rs, index_t cs, float* dst) {
  if (cs == 1) {
    for (index_t p = 0; p < kc; ++p) {
      std::memcpy(dst + p * NR, b + p * rs, sizeof(float) * nr);
      if (nr < NR) std::memset(dst + p * NR + nr, 0, sizeof(float) * (NR - nr));
    }
    return;
  }
  if (nr < NR) std::memset(dst, 0, sizeof(float) * NR * kc);
  // B read along its contiguous direction (rs == 1 for a transposed B) in blocks of 8 depth
  // steps, so each source cache line is used fully while it is hot.
  constexpr index_t PB = 8;
  index_t p0 = 0;
  for (; p0 + PB <= kc; p0 += PB)
    for (index_t j = 0; j < nr; ++j) {
      const float* s = b + j * cs + p0 * rs;
      float* d = dst + p0 * NR + j;
#pragma GCC unroll 8
      for (index_t p = 0; p < PB; ++p) d[p * NR] = s[p * rs];
    }
  for (; p0 < kc; ++p0)
    for (index_t j = 0; j < nr; ++j) dst[p0 * NR + j] = b[j * cs + p0 * rs];
}

// One thread's share: the whole five-loop driver on an M x N sub-problem.
void gemm_serial(index_t M, index_t N, index_t K, MatRef A, MatRef B, float* C, index_t ldc,
                 const GemmEpilogue& ep) {
  const index_t kc_max = min_of<index_t>(K, KC);
  const index_t mc_max = min_of<index_t>(round_up(M, MR), MC);
  const index_t nc_max = min_of<index_t>(round_up(N, NR), NC);
  float* abuf = thread_buffer(0, static_cast<std::size_t>(mc_max * kc_max));
  // In-place B needs a full NR-wide, unit-stride sliver, and pays only when A is one block
  // (otherwise the packed panel is reused by later ic blocks).
  const bool b_in_place = B.cs == 1 && M <= MC;
  float* bbuf = thread_buffer(1, static_cast<std::size_t>(b_in_place ? NR * kc_max
                                                                     : nc_max * kc_max));

  for (index_t jc = 0; jc < N; jc += NC) {
    const index_t nc = min_of<index_t>(NC, N - jc);
    for (index_t pc = 0; pc < K; pc += KC) {
      const index_t kc = min_of<index_t>(KC, K - pc);
      const bool first = pc == 0, last = pc + kc == K;
      for (index_t ic = 0; ic < M; ic += MC) {
        const index_t mc = min_of<index_t>(MC, M - ic);
        pack_a(mc, kc, A.p + ic * A.rs + pc * A.cs, A.rs, A.cs, abuf);
        for (index_t jr = 0; jr < nc; jr += NR) {
          const index_t nr = min_of<index_t>(NR, nc - jr);
          const float* bsrc = B.p + pc * B.rs + (jc + jr) * B.cs;
          const float* bp;
          index_t ldb;
          if (b_in_place && nr == NR) {
            bp = bsrc;
            ldb = B.rs;
          } else {
            float* dst = b_in_place ? bbuf : bbuf + jr * kc;
            if (b_in_place || ic == 0) pack_b(kc, nr, bsrc, B.rs, B.cs, dst);
            bp = dst;
            ldb = NR;
          }
          TileEpilogue te;
          te.beta = first ? ep.beta : 1.0f;
          te.relu = last && ep.relu;
          te.bias_col = (last && ep.bias_mode == Bias::per_col) ? ep.bias + jc + jr : nullptr;
          for (index_t ir = 0; ir < mc; ir += MR) {
            const int m = static_cast<int>(min_of<index_t>(MR, mc - ir));
            te.bias_row = (last && ep.bias_mode == Bias::per_row) ? ep.bias + ic + ir : nullptr;
            kUkernel[m - 1](kc, abuf + ir * kc, bp, ldb, C + (ic + ir) * ldc + jc + jr, ldc,
                            static_cast<int>(nr), te);
          }
        }
      }
    }
  }
}

// K == 0: the product is zero; only beta*C, bias and ReLU remain.
void epilogue_only(index_t M, index_t N, float* C, index_t ldc, const GemmEpilogue& ep) {
  for (index_t i = 0; i < M; ++i)
    for (index_t j = 0; j < N; ++j) {
      float x = ep.beta != 0.0f ? ep.beta * C[i * ldc + j] : 0.0f;
      if (ep.bias_mode == Bias::per_row) x += ep.bias[i];
      if (ep.bias_mode == Bias::per_col) x += ep.bias[j];
      if (ep.relu) x = x > 0.0f ? x : (x != x ? x : 0.0f);
      C[i * ldc + j] = x;
    }
}

// Grid of tm x tn thread rectangles with tm * tn == nt, minimising each thread's packing
// (its rectangle's half-perimeter), so square problems split both ways and skinny ones one way.
std::pair<int, int> thread_grid(index_t M, index_t N, int nt) {
  int best_m = 1;
  double best = 1e300;
  for (int tm = 1; tm <= nt; ++tm) {
    if (nt % tm) continue;
    int tn = nt / tm;
    if (tm > 1 && M < tm * MR) continue;
    if (tn > 1 && N < tn * NR) continue;
    double cost = double(M) / tm + double(N) / tn;
    if (cost < best) best = cost, best_m = tm;
  }
  return {best_m, nt / best_m};
}

// Bounds of part `i` of `parts` over [0, n) in multiples of `align`.
std::pair<index_t, index_t> split(index_t n, int parts, int i, index_t align) {
  index_t units = ceil_div(n, align);
  index_t lo = units * i / parts * align, hi = units * (i + 1) / parts * align;
  return {min_of(lo, n), min_of(hi, n)};
}

}  // namespace

void sgemm(index_t M, index_t N, index_t K, MatRef A, MatRef B, float* C, index_t ldc,
           const GemmEpilogue& ep, int nthreads) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    epilogue_only(M, N, C, ldc, ep);
    return;
  }
  int nt = nthreads > 0 ? nthreads : threads_for(2.0 * double(M) * N * K, 1.5e6);
  if (nt <= 1) {
    gemm_serial(M, N, K, A, B, C, ldc, ep);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
#ifdef _OPENMP
    const int tid = omp_get_thread_num(), team = omp_get_num_threads();
#else
    const int tid = 0, team = 1;
#endif
    // The team may be smaller than asked (nested regions): split over what we got.
    auto [tm, tn] = thread_grid(M, N, team);
    auto [m0, m1] = split(M, tm, tid / tn, MR);
    auto [n0, n1] = split(N, tn, tid % tn, NR);
    if (m1 > m0 && n1 > n0) {
      GemmEpilogue e = ep;
      if (ep.bias_mode == Bias::per_row) e.bias = ep.bias + m0;
      if (ep.bias_mode == Bias::per_col) e.bias = ep.bias + n0;
      MatRef a{A.p + m0 * A.rs, A.rs, A.cs}, b{B.p + n0 * B.cs, B.rs, B.cs};
      gemm_serial(m1 - m0, n1 - n0, K, a, b, C + m0 * ldc + n0, ldc, e);
    }
  }
}

}  // namespace lamina::cpu::LAMINA_ISA_NS
