// gemm.cpp: the BLIS-style SGEMM driver, compiled once per ISA.
//
//   C (M x N, ldc) = beta*C + op(A) (M x K) * op(B) (K x N) (+ bias) (ReLU)
//
// Loops (BLIS names): jc over NC columns of B, pc over KC of the depth, ic over MC rows of A
// (A block packed into MR-row slivers), jr over NR columns (B sliver packed once, on the first
// KC x NC panel, or read in place when M is at most two row tiles and B is row-major),
// ir over MR rows (micro-kernel). Threads each take a rectangle of C and run this serially
// with their own packing buffers; problems below a few MFLOP stay on one thread.
#include <algorithm>
#include <array>
#include <cstring>
#include <cstdlib>
#include <utility>

#include "lamina/gemm.h"
#include "lamina/parallel.h"
#include "sgemm_dot.h"
#include "sgemm_ukernel.h"
#include "transpose.h"
#include "workspace.h"

namespace lamina::cpu::LAMINA_ISA_NS {
namespace {

using namespace gemm_config;

using ukernel_fn = void (*)(index_t, const float*, const float*, index_t, float*, index_t, int,
                            const TileEpilogue&);

template <int NVEC, std::size_t... R>
constexpr auto make_ukernel_table(std::index_sequence<R...>) {
  return std::array<ukernel_fn, sizeof...(R)>{&sgemm_ukernel<int(R) + 1, MR, NVEC>...};
}
// kUkernel[m - 1] computes an m-row tile (1 <= m <= MR); kUkernelHalf the same for a ragged
// right edge no wider than NR / 2 (half the vector work).
const auto kUkernel = make_ukernel_table<NV>(std::make_index_sequence<MR>{});
constexpr int NV_HALF = NV > 1 ? NV / 2 : 1;
const auto kUkernelHalf = make_ukernel_table<NV_HALF>(std::make_index_sequence<MR>{});


// B panel (kc x nc at b, strides rs/cs) -> NR-column slivers, element (p, j) of sliver s at
// dst[s*NR*kc + p*NR + j]; columns past nc are zero. B is read along its contiguous
// direction, whole rows at a time, so each source line and page is touched once.
void pack_b(index_t kc, index_t nc, const float* b, index_t rs, index_t cs, float* dst) {
  using simd::load;
  using simd::load_mask;
  using simd::store;
  using simd::tail_mask;
  using simd::zero;
  const index_t full = nc - nc % NR, tail = nc - full;
  if (cs == 1) {
    for (index_t p = 0; p < kc; ++p) {
      const float* row = b + p * rs;
      for (index_t jr = 0; jr < full; jr += NR) {
        float* d = dst + jr * kc + p * NR;
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) store(d + v * W, load(row + jr + v * W));
      }
      if (tail) {  // masked loads: zero padding without reading past the row
        float* d = dst + full * kc + p * NR;
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) {
          const int nv = static_cast<int>(tail) - v * W;
          store(d + v * W, nv > 0 ? load_mask(row + full + v * W, tail_mask(nv)) : zero());
        }
      }
    }
    return;
  }
  if (tail) {
    float* last = dst + full * kc;
    for (index_t p = 0; p < kc; ++p)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) store(last + p * NR + v * W, zero());
  }
  // Transposed B (rs == 1 typically): column j of op(B) is contiguous along p.
  for (index_t jr = 0; jr < nc; jr += NR) {
    const index_t nr = min_of<index_t>(NR, nc - jr);
    float* d0 = dst + jr * kc;
    index_t p0 = 0, j0 = 0;
#if LAMINA_ISA_ID >= 1
    if (rs == 1) {  // 8 x 8 blocks transposed in registers
      for (; p0 + 8 <= kc; p0 += 8)
        for (j0 = 0; j0 + 8 <= nr; j0 += 8) transpose8x8(b + (jr + j0) * cs + p0, cs, d0 + p0 * NR + j0, NR);
      for (index_t p = 0; p < p0; ++p)  // ragged columns of the blocked rows
        for (index_t j = j0; j < nr; ++j) d0[p * NR + j] = b[(jr + j) * cs + p];
    }
#endif
    for (index_t p = p0; p < kc; ++p)
      for (index_t j = 0; j < nr; ++j) d0[p * NR + j] = b[(jr + j) * cs + p * rs];
  }
}

// A block (mc x kc at a, strides rs/cs) -> slivers of `mr` <= MR rows, element (i, p) of
// sliver s at dst[s*MR*kc + p*MR + i]. The other rows of a sliver are left as they are: the
// m-row micro-kernel reads rows i < m only (zeroing them cost 2 % of a 64-row GEMM).
constexpr std::size_t kPackASlack = 8;  // floats past the packed A block that pack_a may write
void pack_a(index_t mc, index_t kc, const float* a, index_t rs, index_t cs, float* dst, index_t mr) {
  for (index_t ir = 0; ir < mc; ir += mr) {
    const index_t m = min_of<index_t>(mr, mc - ir);
    float* d = dst + ir / mr * MR * kc;
    const float* s = a + ir * rs;
    if (rs == 1) {
      for (index_t p = 0; p < kc; ++p)
        for (index_t i = 0; i < m; ++i) d[p * MR + i] = s[p * cs + i];
    } else {
      index_t p0 = 0;
#if LAMINA_ISA_ID >= 1
      // Row-major A: 8 depth steps x up to 8 rows transposed in registers, stored whole (no
      // masked stores). Row groups go last to first, so a group that ends past MR (rows 8..13
      // of 14) spills into the next depth step's first rows before the group that owns them
      // writes them; the last step's spill lands in the next sliver (packed after this one)
      // or in the buffer's slack (kPackASlack).
      if (cs == 1)
        for (; p0 + 8 <= kc; p0 += 8)
          for (index_t i0 = (m - 1) / 8 * 8; i0 >= 0; i0 -= 8)
            transpose8xr_full(s + i0 * rs + p0, rs, static_cast<int>(min_of<index_t>(8, m - i0)),
                              d + p0 * MR + i0, MR);
#endif
      for (index_t i = 0; i < m; ++i) {
        const float* row = s + i * rs;
        for (index_t p = p0; p < kc; ++p) d[p * MR + i] = row[p * cs];
      }
    }
  }
}

constexpr index_t kInPlaceRowFloats = 512;  // B rows this short are read in place up to 5 row tiles

// One thread's share: the whole five-loop driver on an M x N sub-problem.
void gemm_serial(index_t M, index_t N, index_t K, MatRef A, MatRef B, float* C, index_t ldc,
                 const GemmEpilogue& ep, const GemmBlocking& blk) {
  // A depth at most 1/4 past KC is one block: a thin second block would read and write all
  // of C again for a few rank-1 updates (a 600-deep product against KC = 512),
  // while a B sliver 1/4 deeper still streams from L2 at full speed.
  const index_t KC = K <= blk.kc + blk.kc / 4 ? K : blk.kc;
  const index_t MC = blk.mc, NC = blk.nc, NC_SMALL = blk.nc_small;
  // With a single A block (M <= MC) the packed B panel is consumed once, right after it is
  // packed, so it is kept L2-sized (NC_SMALL) and A is packed once per depth block instead
  // of once per panel (the pc loop goes outside the jc loop).
  const bool one_a_block = M <= MC;
  const index_t nc_blk = one_a_block ? NC_SMALL : NC;
  const index_t kc_max = min_of<index_t>(K, KC);
  const index_t mc_max = min_of<index_t>(round_up(M, MR), MC);
  const index_t nc_max = min_of<index_t>(round_up(N, NR), nc_blk);
  // Row tiles: each A block's rows are shared evenly over its fewest tiles (16 rows: 8 + 8
  // rather than 14 + 2, which would leave the 2-row kernel bound by its loads of B; a
  // 128-row product in blocks of 84 and 44 rows: 14 x 6 and 11 x 4).
  auto tile_rows = [](index_t rows) { return ceil_div(rows, ceil_div(rows, index_t(MR))); };
  float* abuf = thread_buffer(0, workspace_floats(ceil_div(mc_max, index_t(MR)) * MR, kc_max) + kPackASlack);
  // With at most two row tiles, each element of B is used once or twice: packing it would
  // cost as much as the product, so full-width slivers of a row-major B are read in place.
  // So too with up to five row tiles when B's rows are short (<= 512 floats): a sliver then
  // reads 128 bytes of each of KC rows packed close together, and the copy of K x N it saves
  // is 1/5 of the product's loads of B or more (measured on Zen 4, interleaved: 64x800x500
  // 1.04 -> 1.09-1.11 x NumPy at 1 thread, 40x600x300 1.07 -> 1.22; with rows of 1000 floats
  // and more it lost: 48x1000x1000 1.10 -> 1.03, 64x576x16384 1.34 -> 0.80).
  const bool b_in_place = B.cs == 1 && (M <= 2 * MR || (M <= 5 * MR && B.rs <= kInPlaceRowFloats));
  float* bbuf = thread_buffer(1, workspace_floats(b_in_place ? NR : nc_max, kc_max));

  // C[ic:ic+mc, jc:jc+nc] += packed A block (mc x kc) * B panel (kc x nc) at depth pc.
  auto macro_kernel = [&](index_t ic, index_t mc, index_t mr, index_t jc, index_t nc, index_t pc, index_t kc) {
    const bool last = pc + kc == K;
    const float* bpanel = B.p + pc * B.rs + jc * B.cs;
    TileEpilogue te;
    te.beta = pc == 0 ? ep.beta : 1.0f;
    te.relu = last && ep.relu;
    for (index_t jr = 0; jr < nc; jr += NR) {
      const index_t nr = min_of<index_t>(NR, nc - jr);
      te.bias_col = (last && ep.bias_mode == Bias::per_col) ? ep.bias + jc + jr : nullptr;
      const float* bp = bbuf + jr * kc;
      index_t ldb = NR;
      if (b_in_place) {
        if (nr == NR) {
          bp = bpanel + jr;
          ldb = B.rs;
        } else {  // the ragged last sliver is packed (zero-padded) so no load runs past B
          pack_b(kc, nr, bpanel + jr, B.rs, 1, bbuf);
          bp = bbuf;
        }
      }
      const auto& kernels = nr <= NV_HALF * W ? kUkernelHalf : kUkernel;
      for (index_t ir = 0; ir < mc; ir += mr) {
        const int m = static_cast<int>(min_of<index_t>(mr, mc - ir));
        te.bias_row = (last && ep.bias_mode == Bias::per_row) ? ep.bias + ic + ir : nullptr;
        kernels[m - 1](kc, abuf + ir / mr * MR * kc, bp, ldb, C + (ic + ir) * ldc + jc + jr, ldc,
                        static_cast<int>(nr), te);
      }
    }
  };
  auto pack_b_panel = [&](index_t jc, index_t nc, index_t pc, index_t kc) {
    if (!b_in_place) pack_b(kc, nc, B.p + pc * B.rs + jc * B.cs, B.rs, B.cs, bbuf);
  };

  if (one_a_block) {
    const index_t mr = tile_rows(M);
    for (index_t pc = 0; pc < K; pc += KC) {
      const index_t kc = min_of<index_t>(KC, K - pc);
      pack_a(M, kc, A.p + pc * A.cs, A.rs, A.cs, abuf, mr);
      for (index_t jc = 0; jc < N; jc += nc_blk) {
        const index_t nc = min_of<index_t>(nc_blk, N - jc);
        pack_b_panel(jc, nc, pc, kc);
        macro_kernel(0, M, mr, jc, nc, pc, kc);
      }
    }
    return;
  }
  for (index_t jc = 0; jc < N; jc += NC) {
    const index_t nc = min_of<index_t>(NC, N - jc);
    for (index_t pc = 0; pc < K; pc += KC) {
      const index_t kc = min_of<index_t>(KC, K - pc);
      pack_b_panel(jc, nc, pc, kc);
      for (index_t ic = 0; ic < M; ic += MC) {
        const index_t mc = min_of<index_t>(MC, M - ic), mr = tile_rows(mc);
        pack_a(mc, kc, A.p + ic * A.rs + pc * A.cs, A.rs, A.cs, abuf, mr);
        macro_kernel(ic, mc, mr, jc, nc, pc, kc);
      }
    }
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


// Small N: rows [m0, m1) of C as dot products (sgemm_dot.h). Bt = op(B)^T is packed N x K
// (N <= NR / 2, so at most 16 K floats) unless it already is unit-stride along K.
// Rows per dot block: 4 x 4 outputs use 16 accumulators + 5 operands of AVX-512's 32
// registers; AVX2 has 16, so 2 x 4 there.
constexpr index_t kDotRows = LAMINA_ISA_ID == 2 ? 4 : 2;
bool use_dot_path(index_t N) { return W > 1 && N <= NR / 2; }

#if LAMINA_ISA_ID >= 1
template <class V>
void gemm_dot(index_t m0, index_t m1, index_t N, index_t K, MatRef A, const float* bt, index_t ldb,
              float* C, index_t ldc, const GemmEpilogue& ep) {
  float* apack = A.cs == 1 ? nullptr : thread_buffer(0, workspace_floats(kDotRows, K));
  for (index_t i = m0; i < m1; i += kDotRows) {
    const index_t rb = min_of(kDotRows, m1 - i);
    const float* rows[kDotRows];
    for (index_t r = 0; r < rb; ++r) {
      const float* src = A.p + (i + r) * A.rs;
      if (apack) {
        float* d = apack + r * K;
        for (index_t k = 0; k < K; ++k) d[k] = src[k * A.cs];
        src = d;
      }
      rows[r] = src;
    }
    float* c = C + i * ldc;
    if constexpr (kDotRows == 4) {
      switch (rb) {
        case 4: dot_rows<V, 4>(K, N, rows, bt, ldb, c, ldc, ep, i); break;
        case 3: dot_rows<V, 3>(K, N, rows, bt, ldb, c, ldc, ep, i); break;
        case 2: dot_rows<V, 2>(K, N, rows, bt, ldb, c, ldc, ep, i); break;
        default: dot_rows<V, 1>(K, N, rows, bt, ldb, c, ldc, ep, i); break;
      }
    } else {
      if (rb == 2) dot_rows<V, 2>(K, N, rows, bt, ldb, c, ldc, ep, i);
      else dot_rows<V, 1>(K, N, rows, bt, ldb, c, ldc, ep, i);
    }
  }
}

// d (N rows of K, row stride ldd) = op(B)^T for a row-major op(B) (K x N, row stride rs).
// SmallNB::gather (fast gathers, Sapphire Rapids): 16 depth steps of one column per
// vgatherdps. SmallNB::transpose (microcoded gathers, Zen): 8 x 8 blocks transposed in
// registers, 64 elements per 8 loads, 24 shuffles and 8 stores.
void transpose_small_b(index_t K, index_t N, MatRef B, float* d, index_t ldd, SmallNB how) {
  index_t k0 = 0;
#if LAMINA_ISA_ID == 2
  if (how == SmallNB::gather && B.rs > 0 && B.rs < (index_t(1) << 26)) {
    const __m512i idx = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(static_cast<int>(B.rs)));
    for (; k0 + 16 <= K; k0 += 16)
      for (index_t n = 0; n < N; ++n)
        _mm512_store_ps(d + n * ldd + k0, _mm512_i32gather_ps(idx, B.p + k0 * B.rs + n, 4));
  }
#endif
  if (how == SmallNB::transpose) {
    const index_t n8 = N - N % 8;
    for (; k0 + 8 <= K; k0 += 8) {
      for (index_t n = 0; n < n8; n += 8) transpose8x8(B.p + k0 * B.rs + n, B.rs, d + n * ldd + k0, ldd);
      for (index_t k = k0; k < k0 + 8; ++k)
        for (index_t n = n8; n < N; ++n) d[n * ldd + k] = B.p[k * B.rs + n];
    }
  }
  for (index_t k = k0; k < K; ++k)
    for (index_t n = 0; n < N; ++n) d[n * ldd + k] = B.p[k * B.rs + n];
}

void sgemm_small_n(index_t M, index_t N, index_t K, MatRef A, MatRef B, float* C, index_t ldc,
                   const GemmEpilogue& ep, int nt) {
  const Tuning& tu = tuning();
  // Bt = op(B)^T, N rows of K, is always copied (N x K floats: at most 16 K) into rows that
  // start on cache lines: a row of B^T at an arbitrary offset would split every vector load
  // of it over two lines, and those loads are what the dot blocks are short of. Each thread
  // makes its own copy from B (which every core may cache): one made by the calling thread
  // would have to move, line by line, from that core's cache to the others'.
  const index_t ldb = round_up(K, index_t(16));
#if LAMINA_ISA_ID == 2
  const bool wide = tu.dot_width == 512;
#else
  const bool wide = false;
#endif
  parallel_team(nt, [&](int tid, int team) {
    auto [m0, m1] = split_range(M, team, tid, kDotRows);
    if (m1 <= m0) return;
    float* bt = thread_buffer(1, workspace_floats(N, ldb));
    if (B.rs == 1) {
      for (index_t n = 0; n < N; ++n) std::memcpy(bt + n * ldb, B.p + n * B.cs, sizeof(float) * K);
    } else if (B.cs == 1) {
      transpose_small_b(K, N, B, bt, ldb, tu.small_n_b);
    } else {  // op(B)(k, n) at k*rs + n*cs
      for (index_t n = 0; n < N; ++n)
        for (index_t k = 0; k < K; ++k) bt[n * ldb + k] = B.p[n * B.cs + k * B.rs];
    }
#if LAMINA_ISA_ID == 2
    if (wide) return gemm_dot<V512>(m0, m1, N, K, A, bt, ldb, C, ldc, ep);
#endif
    (void)wide;
    gemm_dot<V256>(m0, m1, N, K, A, bt, ldb, C, ldc, ep);
  });
}
#endif

// K == 0: the product is zero; only beta*C, bias and ReLU remain.
void epilogue_only(index_t M, index_t N, float* C, index_t ldc, const GemmEpilogue& ep) {
  for (index_t i = 0; i < M; ++i)
    for (index_t j = 0; j < N; ++j) {
      float x = ep.beta != 0.0f ? ep.beta * C[i * ldc + j] : 0.0f;
      if (ep.bias_mode == Bias::per_row) x += ep.bias[i];
      if (ep.bias_mode == Bias::per_col) x += ep.bias[j];
      if (ep.relu) x = vmath::relu(x);
      C[i * ldc + j] = x;
    }
}

}  // namespace

void sgemm(index_t M, index_t N, index_t K, MatRef A, MatRef B, float* C, index_t ldc,
           const GemmEpilogue& ep, int nthreads) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    epilogue_only(M, N, C, ldc, ep);
    return;
  }
#if LAMINA_ISA_ID >= 1
  if (use_dot_path(N)) {
    const int nt = nthreads > 0 ? nthreads : threads_for(2.0 * double(M) * N * K, 1.5e6);
    sgemm_small_n(M, N, K, A, B, C, ldc, ep, nt);
    return;
  }
#endif
  const int nt = nthreads > 0 ? nthreads : threads_for(2.0 * double(M) * N * K, 1.5e6);
  const GemmBlocking blk = blocking();  // read once: a test may change it between calls
  parallel_team(nt, [&](int tid, int team) {
    auto [tm, tn] = thread_grid(M, N, team);
    auto [m0, m1] = split_range(M, tm, tid / tn, MR);
    auto [n0, n1] = split_range(N, tn, tid % tn, NR);
    if (m1 <= m0 || n1 <= n0) return;
    GemmEpilogue e = ep;
    if (ep.bias_mode == Bias::per_row) e.bias = ep.bias + m0;
    if (ep.bias_mode == Bias::per_col) e.bias = ep.bias + n0;
    MatRef a{A.p + m0 * A.rs, A.rs, A.cs}, b{B.p + n0 * B.cs, B.rs, B.cs};
    gemm_serial(m1 - m0, n1 - n0, K, a, b, C + m0 * ldc + n0, ldc, e, blk);
  });
}

}  // namespace lamina::cpu::LAMINA_ISA_NS
