// winograd.cpp: 3x3 stride-1 convolutions by F(m x m, 3 x 3), m = 2 or 4 (winograd.h),
// compiled once per ISA.
//
// A "unit" is one row of output tiles of one image (TW = ceil(OW / m) tiles). Each thread takes
// a contiguous share of the N * TH units and works through it in groups of units whose
// transformed data fits in L2 (V: a*a*C*G floats, M: a*a*O*G floats, G tiles per group):
//   1. input transform of the group's tiles into V (a*a, C, G), vectors along the tiles;
//   2. a*a GEMMs M[xi] (O x G) = U[xi] (O x C) @ V[xi] (C x G) with the library's GEMM (row
//      blocks of at most five register tiles, so V is read in place, never packed);
//   3. output transform A^T M A (+ bias, ReLU) into y.
// U, the filter transform, is computed once per call by the whole team, before the groups.
//
// The transforms are vectorised along a row of tiles. Tile t of a unit reads input columns
// m*t - pw .. m*t - pw + a - 1; the input rows of a unit are first copied "deinterleaved"
// (D[i][p][t] = x[row i][m*t + p - pw], zero outside the image), so that the value at tile t,
// column j is D[i][j % m][t + j / m]: a contiguous load for every j. The column transform
// (B^T down the a rows) then the row transform (B along the columns) are both plain vector
// arithmetic; the output transform runs the same way and interleaves the m columns of each
// tile back when it stores.
#include "winograd.h"

#include <algorithm>
#include <vector>

#include "lamina/cpu/gemm_config.h"
#include "lamina/cpu/simd.h"
#include "lamina/cpu/tuning.h"
#include "lamina/gemm.h"
#include "lamina/parallel.h"
#include "transpose.h"
#include "workspace.h"

namespace lamina::cpu::LAMINA_ISA_NS {

decltype(::lamina::cpu::sgemm) sgemm;

namespace winograd {
namespace {

using namespace simd;

// Workspace slots: 2 (a thread's V, M and row scratch) as conv.cpp's tiles; 4 holds U on the
// calling thread (which is thread 0 of the team and uses slot 2 as well).
constexpr int kSlotGroup = 2, kSlotPartial = 3, kSlotFilter = 4;
constexpr double kMinFlopsPerThread = 3e5;

// The three matrices of Lavin & Gray applied to a column of vectors (each lane a tile).
//   in:  o = B^T d  (a values)      flt: o = G g  (3 -> a)      out: o = A^T v  (a -> m)
template <int M>
struct F;

template <>
struct F<2> {
  static constexpr int A = 4;
  static void in(const vf* d, vf* o) {
    o[0] = sub(d[0], d[2]);
    o[1] = add(d[1], d[2]);
    o[2] = sub(d[2], d[1]);
    o[3] = sub(d[1], d[3]);
  }
  static void flt(const vf* g, vf* o) {
    const vf h = set1(0.5f), s = mul(h, add(g[0], g[2])), t = mul(h, g[1]);
    o[0] = g[0];
    o[1] = add(s, t);
    o[2] = sub(s, t);
    o[3] = g[2];
  }
  static void out(const vf* v, vf* o) {
    o[0] = add(add(v[0], v[1]), v[2]);
    o[1] = sub(sub(v[1], v[2]), v[3]);
  }
  // The weight gradient's: o = A v (m -> a) on an output-gradient tile, o = G^T v (a -> 3).
  static void out_t(const vf* v, vf* o) {
    o[0] = v[0];
    o[1] = add(v[0], v[1]);
    o[2] = sub(v[0], v[1]);
    o[3] = sub(zero(), v[1]);
  }
  static void flt_t(const vf* v, vf* o) {
    const vf h = set1(0.5f), s = mul(h, add(v[1], v[2])), d = mul(h, sub(v[1], v[2]));
    o[0] = add(v[0], s);
    o[1] = d;
    o[2] = add(s, v[3]);
  }
};

template <>
struct F<4> {
  static constexpr int A = 6;
  static void in(const vf* d, vf* o) {
    const vf c4 = set1(4.0f), c5 = set1(-5.0f), c2 = set1(2.0f), m4 = set1(-4.0f);
    // Shared partial sums (the rows of B^T pair up: 1/2, 3/4).
    const vf t12a = fma(m4, d[2], d[4]);  // -4 d2 + d4
    const vf t12b = fma(c4, d[1], sub(zero(), d[3]));  // 4 d1 - d3
    const vf t34a = sub(d[4], d[2]);  // d4 - d2
    const vf t34b = mul(c2, sub(d[1], d[3]));  // 2 (d1 - d3)
    o[0] = add(fma(c4, d[0], mul(c5, d[2])), d[4]);
    o[1] = sub(t12a, t12b);
    o[2] = add(t12a, t12b);
    o[3] = sub(t34a, t34b);
    o[4] = add(t34a, t34b);
    o[5] = add(fma(c4, d[1], mul(c5, d[3])), d[5]);
  }
  static void flt(const vf* g, vf* o) {
    const vf s02 = add(g[0], g[2]);
    o[0] = mul(set1(0.25f), g[0]);
    o[1] = mul(set1(-1.0f / 6.0f), add(s02, g[1]));
    o[2] = mul(set1(-1.0f / 6.0f), sub(s02, g[1]));
    const vf p = fma(set1(1.0f / 24.0f), g[0], mul(set1(1.0f / 6.0f), g[2])), q = mul(set1(1.0f / 12.0f), g[1]);
    o[3] = add(p, q);
    o[4] = sub(p, q);
    o[5] = g[2];
  }
  static void out(const vf* v, vf* o) {
    const vf s12 = add(v[1], v[2]), d12 = sub(v[1], v[2]);
    const vf s34 = add(v[3], v[4]), d34 = sub(v[3], v[4]);
    o[0] = add(add(v[0], s12), s34);
    o[1] = fma(set1(2.0f), d34, d12);
    o[2] = fma(set1(4.0f), s34, s12);
    o[3] = add(fma(set1(8.0f), d34, d12), v[5]);
  }
  static void out_t(const vf* v, vf* o) {
    const vf s02 = add(v[0], v[2]), s13 = add(v[1], v[3]);
    const vf p = fma(set1(4.0f), v[2], v[0]), q = mul(set1(2.0f), fma(set1(4.0f), v[3], v[1]));
    o[0] = v[0];
    o[1] = add(s02, s13);
    o[2] = sub(s02, s13);
    o[3] = add(p, q);
    o[4] = sub(p, q);
    o[5] = v[3];
  }
  static void flt_t(const vf* v, vf* o) {
    const vf s12 = add(v[1], v[2]), d12 = sub(v[2], v[1]), s34 = add(v[3], v[4]), d34 = sub(v[3], v[4]);
    const vf c6 = set1(1.0f / 6.0f);
    o[0] = fma(set1(0.25f), v[0], fma(set1(1.0f / 24.0f), s34, mul(set1(-1.0f / 6.0f), s12)));
    o[1] = fma(c6, d12, mul(set1(1.0f / 12.0f), d34));
    o[2] = fma(c6, sub(s34, s12), v[5]);
  }
};

// Channels are processed in blocks of W (one vector): the image is first copied, zero-padded,
// into a channel-blocked layout XB (Cb, Hp, Wp, W), so that one load gives one pixel of W
// channels and a tile's transform is a*a vector loads and plain vector arithmetic. The
// transformed data keeps channels innermost:
//   V (a*a, G, Cp)   Cp = Cb * W (channels past C are zero)
//   U (a*a, C, O)    the GEMM's B operand, row-major
//   M (a*a, G, Op)   = V[xi] (G x C) @ U[xi] (C x O), Op = O rounded up to vectors
// and the output transform writes m rows of blocked output, turned back to NCHW with 8 x 8
// register transposes.
struct Geometry {
  index_t TH, TW;  // tiles down and across
  index_t Hp, Wp;  // the blocked padded image: TH*m + 2 rows, TW*m + 2 columns
  index_t Cb, Cp, Ob, Op;
};
Geometry geometry(const Conv2dShape& s, int m) {
  Geometry g;
  g.TH = ceil_div(s.OH, m);
  g.TW = ceil_div(s.OW, m);
  g.Hp = g.TH * m + 2;
  g.Wp = g.TW * m + 2;
  g.Cb = ceil_div(s.C, index_t(W));
  g.Cp = g.Cb * W;
  g.Ob = ceil_div(s.O, index_t(W));
  g.Op = g.Ob * W;
  return g;
}

// XB[cb][r][col][0..W) = x[cb*W + lane][r - ph][col - pw] of an image xn (C x H x Wd), 0
// outside it; Cb blocks of Hp x Wp pixels.
void block_image(index_t C, index_t H, index_t Wd, index_t ph, index_t pw, index_t Cb, index_t Hp, index_t Wp,
                 const float* xn, float* XB) {
  const index_t HW = H * Wd;
  for (index_t cb = 0; cb < Cb; ++cb) {
    float* xb = XB + cb * Hp * Wp * W;
    const index_t c0 = cb * W, cn = min_of<index_t>(W, C - c0);
    // Rows [r0, r1) of the padded frame hold input rows; columns [pw, pw + cols) of them too.
    const index_t r0 = min_of(ph, Hp), r1 = max_of(r0, min_of(Hp, ph + H));
    const index_t cols = max_of<index_t>(0, min_of(Wd, Wp - pw));
    std::fill(xb, xb + r0 * Wp * W, 0.0f);
    std::fill(xb + r1 * Wp * W, xb + Hp * Wp * W, 0.0f);
    for (index_t r = r0; r < r1; ++r) {
      float* row = xb + r * Wp * W;
      std::fill(row, row + pw * W, 0.0f);
      std::fill(row + (pw + cols) * W, row + Wp * W, 0.0f);
      const float* src = xn + c0 * HW + (r - ph) * Wd;  // (cn channels, row stride HW)
      float* dst = row + pw * W;
      index_t col = 0;
#if LAMINA_ISA_ID >= 1
      for (; col + 8 <= cols; col += 8)
        for (index_t cs = 0; cs < W; cs += 8)
          transpose8xr_full(src + cs * HW + col, HW, int(max_of<index_t>(0, min_of<index_t>(8, cn - cs))),
                            dst + col * W + cs, W);
#endif
      for (; col < cols; ++col)
        for (index_t c = 0; c < W; ++c) dst[col * W + c] = c < cn ? src[c * HW + col] : 0.0f;
    }
  }
}
void block_image(const Conv2dShape& s, const Geometry& g, const float* xn, float* XB) {
  block_image(s.C, s.H, s.W, s.ph, s.pw, g.Cb, g.Hp, g.Wp, xn, XB);
}

// V[xi][toff + tx][cb*W ..] (row stride ldv = Cp, xi stride ldxi) for the TW tiles of tile row
// ty, from the blocked image.
template <int M>
void input_unit(const Geometry& g, const float* XB, index_t ty, float* V, index_t ldxi, index_t toff) {
  constexpr int A = F<M>::A;
  const index_t Wp = g.Wp;
  for (index_t tx = 0; tx < g.TW; ++tx) {
    float* Vt = V + (toff + tx) * g.Cp;
    for (index_t cb = 0; cb < g.Cb; ++cb) {
      const float* base = XB + ((cb * g.Hp + ty * M) * Wp + tx * M) * W;
      vf tmp[A][A];  // B^T d: tmp[k][j]
      for (int j = 0; j < A; ++j) {
        vf col[A], r[A];
        for (int i = 0; i < A; ++i) col[i] = load(base + (i * Wp + j) * W);
        F<M>::in(col, r);
        for (int k = 0; k < A; ++k) tmp[k][j] = r[k];
      }
      for (int k = 0; k < A; ++k) {
        vf v[A];
        F<M>::in(tmp[k], v);
        for (int l = 0; l < A; ++l) store(Vt + (k * A + l) * ldxi + cb * W, v[l]);
      }
    }
  }
}

// Output rows ty*m .. of image yn (O x OH x OW) from M[xi][toff + tx][o] (row stride Op, xi
// stride ldxi). Y: scratch of m * TW*m * W floats (one channel block of the m rows, blocked).
template <int Mt>
void output_unit(const Conv2dShape& s, const Geometry& g, const float* Mx, index_t ldxi, index_t toff,
                 const float* b, bool relu, index_t ty, float* yn, float* Y) {
  constexpr int A = F<Mt>::A;
  const index_t OH = s.OH, OW = s.OW, P = OH * OW, cols = g.TW * Mt;
  const index_t rows = min_of<index_t>(Mt, OH - ty * Mt);
  for (index_t ob = 0; ob < g.Ob; ++ob) {
    const index_t o0 = ob * W, on = min_of<index_t>(W, s.O - o0);
    const vf bias = b ? load_mask(b + o0, tail_mask(int(on))) : zero();
    for (index_t tx = 0; tx < g.TW; ++tx) {
      const float* Mt0 = Mx + (toff + tx) * g.Op + o0;
      vf z[Mt][A];  // A^T m down the columns: z[q][l]
      for (int l = 0; l < A; ++l) {
        vf col[A], r[Mt];
        for (int k = 0; k < A; ++k) col[k] = load(Mt0 + (k * A + l) * ldxi);
        F<Mt>::out(col, r);
        for (int q = 0; q < Mt; ++q) z[q][l] = r[q];
      }
      for (int q = 0; q < Mt; ++q) {
        vf r[Mt];
        F<Mt>::out(z[q], r);
        for (int c = 0; c < Mt; ++c) {
          vf v = add(r[c], bias);
          if (relu) v = max(zero(), v);  // as the GEMM epilogue: NaN propagates
          store(Y + (q * cols + tx * Mt + c) * W, v);
        }
      }
    }
    // Back to NCHW: y[o0 + lane][ty*m + q][col] = Y[q][col][lane].
    for (index_t q = 0; q < rows; ++q) {
      const float* src = Y + q * cols * W;
      float* dst = yn + o0 * P + (ty * Mt + q) * OW;
      index_t col = 0;
#if LAMINA_ISA_ID >= 1
      const index_t full8 = on / 8 * 8;
      for (; col < OW; col += 8) {
        const int n = int(min_of<index_t>(8, OW - col));
        for (index_t cs = 0; cs < full8; cs += 8) transpose8xr(src + col * W + cs, W, n, dst + cs * P + col, P);
        for (index_t c = full8; c < on; ++c)
          for (int k = 0; k < n; ++k) dst[c * P + col + k] = src[(col + k) * W + c];
      }
#endif
      for (; col < OW; ++col)
        for (index_t c = 0; c < on; ++c) dst[c * P + col] = src[col * W + c];
    }
  }
}

// U[xi][c][o] for input channels [c0, c1). wt: scratch of 9 * Op floats.
template <int M>
void filter_range(index_t O, index_t C, const float* w, bool flipped, index_t c0, index_t c1, float* U,
                  float* wt) {
  constexpr int A = F<M>::A;
  for (index_t c = c0; c < c1; ++c) {
    // wt[k][o]: tap k (row-major 3x3) of the filter (o, c), output channels contiguous.
    for (index_t o = 0; o < O; ++o)
      for (int k = 0; k < 9; ++k) wt[k * O + o] = flipped ? w[(c * O + o) * 9 + (8 - k)] : w[(o * C + c) * 9 + k];
    for (index_t o = 0; o < O; o += W) {
      const mask_t mk = tail_mask(int(min_of<index_t>(W, O - o)));
      vf gk[9];
      for (int k = 0; k < 9; ++k) gk[k] = load_mask(wt + k * O + o, mk);
      vf tmp[A][3];  // G g: a rows x 3 columns
      for (int j = 0; j < 3; ++j) {
        const vf col[3] = {gk[j], gk[3 + j], gk[6 + j]};
        vf r[A];
        F<M>::flt(col, r);
        for (int i = 0; i < A; ++i) tmp[i][j] = r[i];
      }
      for (int i = 0; i < A; ++i) {
        vf r[A];
        F<M>::flt(tmp[i], r);
        for (int l = 0; l < A; ++l) store_mask(U + ((i * A + l) * C + c) * O + o, mk, r[l]);
      }
    }
  }
}

void filter_range(int m, index_t O, index_t C, const float* w, bool flipped, index_t c0, index_t c1, float* U,
                  float* wt) {
  if (m == 4) filter_range<4>(O, C, w, flipped, c0, c1, U, wt);
  else filter_range<2>(O, C, w, flipped, c0, c1, U, wt);
}

// M[xi] (G x O, row stride Op) = V[xi] (G x C, row stride Cp) @ U[xi] (C x O), each xi.
void products(int A, const Geometry& g, index_t C, index_t O, index_t G, const float* U, const float* V,
              float* Mx) {
  const GemmEpilogue ep;
  for (int xi = 0; xi < A * A; ++xi)
    sgemm(G, O, C, MatRef{V + xi * G * g.Cp, g.Cp, 1}, MatRef{U + xi * C * O, O, 1}, Mx + xi * G * g.Op, g.Op, ep,
          1);
}

// Units (tile rows) per group: V and M of the group within half the L2 (a*a*(Cp+Op) floats
// per tile), at least one unit; tuning().wino_tiles overrides (tests, experiments).
index_t group_units(int m, const Geometry& g) {
  const index_t a2 = (m + 2) * (m + 2);
  index_t tiles = tuning().wino_tiles;
  if (tiles <= 0) {
    const long l2 = tuning().cpu.l2 > 0 ? tuning().cpu.l2 : 512 * 1024;
    tiles = index_t(l2 / 2) / (a2 * (g.Cp + g.Op) * index_t(sizeof(float)));
    tiles = max_of<index_t>(tiles, 4 * gemm_config::MR);  // GEMMs of a few row tiles at least
  }
  return max_of<index_t>(1, tiles / g.TW);
}

template <int M>
void forward_impl(const Conv2dShape& s, const float* x, const float* w, const float* b, bool relu, float* y,
                  bool flipped) {
  constexpr int A = F<M>::A;
  const Geometry g = geometry(s, M);
  const index_t C = s.C, O = s.O, units = s.N * g.TH;
  const index_t gu = group_units(M, g);
  const double flops = 2.0 * double(A * A) * double(O) * double(C) * double(units * g.TW) +
                       double(units * g.TW) * double(A * A) * double(C + O) * 4.0;
  const int nt = threads_for(flops, kMinFlopsPerThread);
  float* U = thread_buffer(kSlotFilter, workspace_floats(A * A * C, O));
  parallel_team_then(
      nt,
      [&](int tid, int team) {  // the filter transform, split over input channels
        const auto [c0, c1] = split_range(C, team, tid);
        if (c0 == c1) return;
        float* wt = thread_buffer(kSlotGroup, workspace_floats(9, g.Op));
        filter_range<M>(O, C, w, flipped, c0, c1, U, wt);
      },
      [&](int tid, int team) {
        const index_t u0 = units * tid / team, u1 = units * (tid + 1) / team;
        if (u0 == u1) return;
        const index_t G = min_of(gu, u1 - u0) * g.TW;  // tiles of the largest group
        const index_t vfl = A * A * G * g.Cp, mfl = A * A * G * g.Op, xbf = g.Cb * g.Hp * g.Wp * W;
        float* V = thread_buffer(kSlotGroup, workspace_floats(1, vfl + mfl + xbf + M * g.TW * M * W));
        float *Mx = V + vfl, *XB = Mx + mfl, *Y = XB + xbf;
        index_t blocked = -1;  // the image in XB
        for (index_t ug = u0; ug < u1; ug += gu) {
          const index_t ue = min_of(ug + gu, u1), Gt = (ue - ug) * g.TW;
          for (index_t u = ug; u < ue; ++u) {
            const index_t n = u / g.TH;
            if (n != blocked) block_image(s, g, x + n * C * s.H * s.W, XB);
            blocked = n;
            input_unit<M>(g, XB, u % g.TH, V, Gt * g.Cp, (u - ug) * g.TW);
          }
          products(A, g, C, O, Gt, U, V, Mx);
          for (index_t u = ug; u < ue; ++u)
            output_unit<M>(s, g, Mx, Gt * g.Op, (u - ug) * g.TW, b, relu, u % g.TH,
                           y + (u / g.TH) * O * s.OH * s.OW, Y);
        }
      });
}

// GY[xi][toff + tx][ob*W ..] (row stride Op, xi stride ldxi) = A g A^T of the output-gradient
// tiles of tile row ty, from the blocked grad_y (Ob, TH*m, TW*m, W), zero past OH x OW.
template <int M>
void grad_output_unit(const Geometry& g, const float* GB, index_t ty, float* GY, index_t ldxi, index_t toff) {
  constexpr int A = F<M>::A;
  const index_t Wq = g.TW * M;
  for (index_t tx = 0; tx < g.TW; ++tx) {
    float* Gt = GY + (toff + tx) * g.Op;
    for (index_t ob = 0; ob < g.Ob; ++ob) {
      const float* base = GB + ((ob * g.TH * M + ty * M) * Wq + tx * M) * W;
      vf tmp[A][M];  // A g down the columns: tmp[k][j]
      for (int j = 0; j < M; ++j) {
        vf col[M], r[A];
        for (int i = 0; i < M; ++i) col[i] = load(base + (i * Wq + j) * W);
        F<M>::out_t(col, r);
        for (int k = 0; k < A; ++k) tmp[k][j] = r[k];
      }
      for (int k = 0; k < A; ++k) {
        vf v[A];
        F<M>::out_t(tmp[k], v);
        for (int l = 0; l < A; ++l) store(Gt + (k * A + l) * ldxi + ob * W, v[l]);
      }
    }
  }
}

// grad_w[o][c] (3 x 3) = G^T dU[:, c, o] G for input channels [c0, c1); dU (a*a, C, O).
template <int M>
void weight_from_transformed(index_t O, index_t C, const float* dU, index_t c0, index_t c1, float* grad_w) {
  constexpr int A = F<M>::A;
  alignas(64) float lanes[9][W];
  for (index_t c = c0; c < c1; ++c)
    for (index_t o = 0; o < O; o += W) {
      const index_t on = min_of<index_t>(W, O - o);
      const mask_t mk = tail_mask(int(on));
      vf tmp[3][A];  // G^T d down the columns
      for (int l = 0; l < A; ++l) {
        vf col[A], r[3];
        for (int k = 0; k < A; ++k) col[k] = load_mask(dU + ((k * A + l) * C + c) * O + o, mk);
        F<M>::flt_t(col, r);
        for (int i = 0; i < 3; ++i) tmp[i][l] = r[i];
      }
      for (int i = 0; i < 3; ++i) {
        vf r[3];
        F<M>::flt_t(tmp[i], r);
        for (int j = 0; j < 3; ++j) store(lanes[i * 3 + j], r[j]);
      }
      for (index_t q = 0; q < on; ++q)
        for (int k = 0; k < 9; ++k) grad_w[((o + q) * C + c) * 9 + k] = lanes[k][q];
    }
}

template <int M>
void backward_weight_impl(const Conv2dShape& s, const float* x, const float* gy, float* grad_w, float* grad_b) {
  constexpr int A = F<M>::A;
  const Geometry g = geometry(s, M);
  const index_t C = s.C, O = s.O, units = s.N * g.TH, P = s.OH * s.OW;
  const index_t gu = group_units(M, g);
  const double flops = 2.0 * double(A * A) * double(O) * double(C) * double(units * g.TW) +
                       double(units * g.TW) * double(A * A) * double(C + O) * 4.0;
  const int nt = threads_for(flops, kMinFlopsPerThread);
  const index_t ulen = A * A * C * O;
  std::vector<float*> partial(static_cast<std::size_t>(nt), nullptr);
  parallel_team_then(
      nt,
      [&](int tid, int team) {
        float* dU = thread_buffer(kSlotPartial, workspace_floats(1, ulen));
        partial[static_cast<std::size_t>(tid)] = dU;
        const index_t u0 = units * tid / team, u1 = units * (tid + 1) / team;
        if (u0 == u1) {
          std::fill(dU, dU + ulen, 0.0f);
          return;
        }
        const index_t G = min_of(gu, u1 - u0) * g.TW;
        const index_t vfl = A * A * G * g.Cp, gfl = A * A * G * g.Op, xbf = g.Cb * g.Hp * g.Wp * W,
                      gbf = g.Ob * g.TH * M * g.TW * M * W;
        float* V = thread_buffer(kSlotGroup, workspace_floats(1, vfl + gfl + xbf + gbf));
        float *GY = V + vfl, *XB = GY + gfl, *GB = XB + xbf;
        GemmEpilogue ep;  // the first group overwrites dU, the others add to it
        index_t blocked = -1;
        for (index_t ug = u0; ug < u1; ug += gu) {
          const index_t ue = min_of(ug + gu, u1), Gt = (ue - ug) * g.TW;
          for (index_t u = ug; u < ue; ++u) {
            const index_t n = u / g.TH;
            if (n != blocked) {
              block_image(s, g, x + n * C * s.H * s.W, XB);
              block_image(O, s.OH, s.OW, 0, 0, g.Ob, g.TH * M, g.TW * M, gy + n * O * P, GB);
            }
            blocked = n;
            input_unit<M>(g, XB, u % g.TH, V, Gt * g.Cp, (u - ug) * g.TW);
            grad_output_unit<M>(g, GB, u % g.TH, GY, Gt * g.Op, (u - ug) * g.TW);
          }
          // dU[xi] (C x O) (+)= V[xi]^T (C x Gt) @ GY[xi] (Gt x O)
          for (int xi = 0; xi < A * A; ++xi)
            sgemm(C, O, Gt, MatRef{V + xi * Gt * g.Cp, 1, g.Cp}, MatRef{GY + xi * Gt * g.Op, g.Op, 1},
                  dU + xi * C * O, O, ep, 1);
          ep.beta = 1.0f;
        }
      },
      [&](int tid, int team) {
        // Sum the partials (thread tid's share of dU, in place in partial[0] -- each element is
        // read and written by one thread only), then grad_b.
        const auto [i0, i1] = split_range(ulen, team, tid, W);
        float* dst = partial[0];
        for (int p = 1; p < team; ++p) {
          const float* src = partial[static_cast<std::size_t>(p)];
          for (index_t i = i0; i < i1; ++i) dst[i] += src[i];
        }
        const auto [o0, o1] = split_range(O, team, tid);
        for (index_t o = o0; o < o1; ++o) {
          double t = 0.0;
          for (index_t n = 0; n < s.N; ++n) {
            const float* p = gy + (n * O + o) * P;
            vf acc = zero();
            index_t i = 0;
            for (; i + W <= P; i += W) acc = add(acc, load(p + i));
            if (i < P) acc = add(acc, load_mask(p + i, tail_mask(int(P - i))));
            t += hsum(acc);
          }
          grad_b[o] = float(t);
        }
      });
  // G^T dU G, split over input channels (after the reduction: a second team).
  parallel_team(nt, [&](int tid, int team) {
    const auto [c0, c1] = split_range(C, team, tid);
    weight_from_transformed<M>(O, C, partial[0], c0, c1, grad_w);
  });
}

}  // namespace

bool eligible(const Conv2dShape& s) {
  return s.kH == 3 && s.kW == 3 && s.sh == 1 && s.sw == 1 && s.dh == 1 && s.dw == 1 && s.C > 0 && s.O > 0 &&
         s.N > 0 && s.OH > 0 && s.OW > 0;
}

bool backward_data_eligible(const Conv2dShape& s) { return eligible(s) && s.ph <= 2 && s.pw <= 2; }

namespace {
// The measured rule (docs/performance.md, "Winograd: when"; Zen 4, 1 and 2 threads, batch 1,
// 8 and 64, 4x4 to 32x32 images, 3 to 256 channels):
//  - channels: below 16 input or output channels, im2col + GEMM (or the direct convolution)
//    wins: the transforms then cost as much as the GEMMs they shrink (16 -> 16 is even:
//    F(4x4) forward x0.85-1.00, backward x1.09-1.42);
//  - tiles: the filter transform (a*a * C * O values) is paid once per call, the GEMMs
//    (a*a * C * O per tile) once per tile, and GEMMs of a few rows run slowly: Winograd
//    wins from about max(8 per thread, C * O / 2048) tiles;
//  - F(4x4, 3x3) where it has those tiles and at most 512 channels each way (its error,
//    5-40x the direct float32 error, measured up to 512 channels, stays under a fifth of the
//    opcheck tolerance), else F(2x2, 3x3) (error 1-2x the direct one) where that has them.
int auto_tile(const Conv2dShape& s) {
  if (s.C < 16 || s.O < 16) return 0;
  const double enough = max_of(8.0 * num_threads(), double(s.C) * double(s.O) / 2048.0);
  const double t4 = double(s.N) * double(ceil_div(s.OH, 4)) * double(ceil_div(s.OW, 4));
  const double t2 = double(s.N) * double(ceil_div(s.OH, 2)) * double(ceil_div(s.OW, 2));
  // A group holds at least one row of tiles: on very wide images with many channels that alone
  // would be a large workspace (V and M of a row: a*a * TW * (C + O) floats); keep it under 64 MiB.
  auto row_fits = [&](index_t m) {
    return double((m + 2) * (m + 2)) * double(ceil_div(s.OW, m)) * double(s.C + s.O + 2 * W) * 4.0 < 64.0 * (1 << 20);
  };
  if (t4 >= enough && s.C <= 512 && s.O <= 512 && row_fits(4)) return 4;
  if (t2 >= enough && row_fits(2)) return 2;
  return 0;
}
int chosen_tile(const Conv2dShape& s, bool ok) {
  if (!ok) return 0;
  switch (tuning().conv_algo) {
    case ConvAlgo::gemm: return 0;
    case ConvAlgo::winograd2: return 2;
    case ConvAlgo::winograd4: return 4;
    default: return auto_tile(s);
  }
}
}  // namespace

int forward_tile(const Conv2dShape& s) { return chosen_tile(s, eligible(s)); }
int backward_data_tile(const Conv2dShape& s) { return chosen_tile(s, backward_data_eligible(s)); }
int backward_weight_tile(const Conv2dShape& s) { return chosen_tile(s, eligible(s)); }

void conv2d(const Conv2dShape& s, int m, const float* x, const float* w, const float* b, bool relu, float* y,
            bool flipped) {
  if (m == 4) forward_impl<4>(s, x, w, b, relu, y, flipped);
  else forward_impl<2>(s, x, w, b, relu, y, flipped);
}

void conv2d_backward_data(const Conv2dShape& s, int m, const float* w, const float* grad_y, float* grad_x) {
  // grad_x = conv(grad_y padded by 2 - p, w[c, o, ::-1, ::-1]): a convolution from O to C
  // channels whose output is the input's H x W.
  Conv2dShape t = s;
  t.C = s.O;
  t.O = s.C;
  t.H = s.OH;
  t.W = s.OW;
  t.ph = 2 - s.ph;
  t.pw = 2 - s.pw;
  t.OH = s.H;
  t.OW = s.W;
  conv2d(t, m, grad_y, w, nullptr, false, grad_x, true);
}

// The stage aids produce the reference's layouts (winograd.h), transposed from the internal ones.
void conv2d_backward_weight(const Conv2dShape& s, int m, const float* x, const float* grad_y, float* grad_w,
                            float* grad_b) {
  if (m == 4) backward_weight_impl<4>(s, x, grad_y, grad_w, grad_b);
  else backward_weight_impl<2>(s, x, grad_y, grad_w, grad_b);
}

void filter_transform(int m, index_t O, index_t C, const float* w, bool flipped, float* U) {
  const index_t a2 = (m + 2) * (m + 2);
  std::vector<float> Ui(static_cast<std::size_t>(a2 * C * O)), wt(static_cast<std::size_t>(9 * round_up(O, W)));
  filter_range(m, O, C, w, flipped, 0, C, Ui.data(), wt.data());
  for (index_t xi = 0; xi < a2; ++xi)
    for (index_t o = 0; o < O; ++o)
      for (index_t c = 0; c < C; ++c) U[(xi * O + o) * C + c] = Ui[static_cast<std::size_t>((xi * C + c) * O + o)];
}

void input_transform(const Conv2dShape& s, int m, const float* x, float* V) {
  const Geometry g = geometry(s, m);
  const index_t a2 = (m + 2) * (m + 2), T = s.N * g.TH * g.TW;
  std::vector<float> XB(static_cast<std::size_t>(g.Cb * g.Hp * g.Wp * W)), Vi(static_cast<std::size_t>(a2 * T * g.Cp));
  for (index_t u = 0; u < s.N * g.TH; ++u) {
    if (u % g.TH == 0) block_image(s, g, x + (u / g.TH) * s.C * s.H * s.W, XB.data());
    if (m == 4) input_unit<4>(g, XB.data(), u % g.TH, Vi.data(), T * g.Cp, u * g.TW);
    else input_unit<2>(g, XB.data(), u % g.TH, Vi.data(), T * g.Cp, u * g.TW);
  }
  for (index_t xi = 0; xi < a2; ++xi)
    for (index_t c = 0; c < s.C; ++c)
      for (index_t t = 0; t < T; ++t) V[(xi * s.C + c) * T + t] = Vi[static_cast<std::size_t>((xi * T + t) * g.Cp + c)];
}

void output_transform(const Conv2dShape& s, int m, const float* Mx, const float* b, bool relu, float* y) {
  const Geometry g = geometry(s, m);
  const index_t a2 = (m + 2) * (m + 2), T = s.N * g.TH * g.TW;
  std::vector<float> Mi(static_cast<std::size_t>(a2 * T * g.Op), 0.0f), Y(static_cast<std::size_t>(m * g.TW * m * W));
  for (index_t xi = 0; xi < a2; ++xi)
    for (index_t o = 0; o < s.O; ++o)
      for (index_t t = 0; t < T; ++t) Mi[static_cast<std::size_t>((xi * T + t) * g.Op + o)] = Mx[(xi * s.O + o) * T + t];
  for (index_t u = 0; u < s.N * g.TH; ++u) {
    float* yn = y + (u / g.TH) * s.O * s.OH * s.OW;
    if (m == 4) output_unit<4>(s, g, Mi.data(), T * g.Op, u * g.TW, b, relu, u % g.TH, yn, Y.data());
    else output_unit<2>(s, g, Mi.data(), T * g.Op, u * g.TW, b, relu, u % g.TH, yn, Y.data());
  }
}

}  // namespace winograd
}  // namespace lamina::cpu::LAMINA_ISA_NS
