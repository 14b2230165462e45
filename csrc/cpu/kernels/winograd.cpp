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
#include "workspace.h"

namespace lamina::cpu::LAMINA_ISA_NS {

decltype(::lamina::cpu::sgemm) sgemm;

namespace winograd {
namespace {

using namespace simd;

// Workspace slots: 2 (a thread's V, M and row scratch) as conv.cpp's tiles; 4 holds U on the
// calling thread (which is thread 0 of the team and uses slot 2 as well).
constexpr int kSlotGroup = 2, kSlotFilter = 4;
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
};

struct Geometry {
  index_t TH, TW;  // tiles down and across
  index_t TWp;     // floats per deinterleaved phase row: TW + 1 rounded up to vectors, + W
};
Geometry geometry(const Conv2dShape& s, int m) {
  Geometry g;
  g.TH = ceil_div(s.OH, m);
  g.TW = ceil_div(s.OW, m);
  g.TWp = round_up(g.TW + 1, index_t(W)) + W;
  return g;
}

// Tail mask of the vector of tiles starting at t (TW tiles).
inline mask_t tiles_mask(index_t t, index_t TW) { return tail_mask(int(min_of<index_t>(W, TW - t))); }

// V[xi * ldxi + c * ldc + toff + t] for the TW tiles of unit (image xn (C x H x W), tile row
// ty) and channels [0, C). D and R: scratch of a * m * TWp floats each.
template <int M>
void input_unit(const Conv2dShape& s, const Geometry& g, const float* xn, index_t ty, float* V, index_t ldxi,
                index_t ldc, index_t toff, float* D, float* R) {
  constexpr int A = F<M>::A;
  const index_t H = s.H, Wd = s.W, TW = g.TW, TWp = g.TWp;
  // Per phase p: the tiles whose column m*t + p - pw lies inside the image.
  index_t tlo[M], thi[M];
  for (int p = 0; p < M; ++p) {
    const index_t off = p - s.pw;  // column = m t + off
    tlo[p] = off >= 0 ? 0 : ceil_div(-off, M);
    tlo[p] = min_of(tlo[p], TWp);
    thi[p] = Wd - 1 - off < 0 ? 0 : (Wd - 1 - off) / M + 1;
    thi[p] = max_of(tlo[p], min_of(thi[p], TWp));
  }
  for (index_t c = 0; c < s.C; ++c) {
    const float* xc = xn + c * H * Wd;
    for (int i = 0; i < A; ++i) {
      const index_t row = ty * M - s.ph + i;
      float* Di = D + i * M * TWp;
      if (row < 0 || row >= H) {
        std::fill(Di, Di + M * TWp, 0.0f);
        continue;
      }
      const float* xr = xc + row * Wd;
      for (int p = 0; p < M; ++p) {
        float* d = Di + p * TWp;
        const index_t off = p - s.pw;
        std::fill(d, d + tlo[p], 0.0f);
        for (index_t t = tlo[p]; t < thi[p]; ++t) d[t] = xr[t * M + off];
        std::fill(d + thi[p], d + TWp, 0.0f);
      }
    }
    // Column transform: R[k][p][t] = sum_i B^T[k][i] D[i][p][t] (TW + 1 tiles are needed).
    for (int p = 0; p < M; ++p)
      for (index_t t = 0; t < TW + 1; t += W) {
        vf d[A], r[A];
        for (int i = 0; i < A; ++i) d[i] = load(D + (i * M + p) * TWp + t);
        F<M>::in(d, r);
        for (int k = 0; k < A; ++k) store(R + (k * M + p) * TWp + t, r[k]);
      }
    // Row transform: V[k][l][t] = sum_j B^T[l][j] R[k][j % m][t + j / m].
    float* Vc = V + c * ldc + toff;
    for (index_t t = 0; t < TW; t += W) {
      const mask_t mk = tiles_mask(t, TW);
      for (int k = 0; k < A; ++k) {
        vf e[A], v[A];
        for (int j = 0; j < A; ++j) e[j] = load(R + (k * M + j % M) * TWp + t + j / M);
        F<M>::in(e, v);
        for (int l = 0; l < A; ++l) store_mask(Vc + (k * A + l) * ldxi + t, mk, v[l]);
      }
    }
  }
}

// y rows ty*m .. of image yn (O x OH x OW) from M[xi * ldxi + o * ldo + toff + t]. Y: scratch
// of m * m * TWp floats.
template <int Mt>
void output_unit(const Conv2dShape& s, const Geometry& g, const float* Mx, index_t ldxi, index_t ldo,
                 index_t toff, const float* b, bool relu, index_t ty, float* yn, float* Y) {
  constexpr int A = F<Mt>::A;
  const index_t OH = s.OH, OW = s.OW, TW = g.TW, TWp = g.TWp;
  const index_t rows = min_of<index_t>(Mt, OH - ty * Mt);
  const index_t full = OW / Mt;  // tiles whose m columns are all inside the output
  for (index_t o = 0; o < s.O; ++o) {
    const float* Mo = Mx + o * ldo + toff;
    const vf bias = b ? set1(b[o]) : zero();
    for (index_t t = 0; t < TW; t += W) {
      const mask_t mk = tiles_mask(t, TW);
      vf z[Mt][A];
      for (int l = 0; l < A; ++l) {
        vf col[A], r[Mt];
        for (int k = 0; k < A; ++k) col[k] = load_mask(Mo + (k * A + l) * ldxi + t, mk);
        F<Mt>::out(col, r);
        for (int q = 0; q < Mt; ++q) z[q][l] = r[q];
      }
      for (int q = 0; q < Mt; ++q) {
        vf r[Mt];
        F<Mt>::out(z[q], r);
        for (int c = 0; c < Mt; ++c) {
          vf v = add(r[c], bias);
          if (relu) v = max(zero(), v);  // as the GEMM epilogue: NaN propagates
          store(Y + (q * Mt + c) * TWp + t, v);
        }
      }
    }
    float* yo = yn + o * OH * OW + ty * Mt * OW;
    for (index_t q = 0; q < rows; ++q) {
      float* yr = yo + q * OW;
      const float* Yq = Y + q * Mt * TWp;
      for (index_t t = 0; t < full; ++t)
        for (int c = 0; c < Mt; ++c) yr[t * Mt + c] = Yq[c * TWp + t];
      for (index_t col = full * Mt; col < OW; ++col) yr[col] = Yq[(col % Mt) * TWp + col / Mt];
    }
  }
}

// U[xi][o][c] for outputs [o0, o1). wt: scratch of 9 * C floats.
template <int M>
void filter_range(index_t O, index_t C, const float* w, bool flipped, index_t o0, index_t o1, float* U,
                  float* wt) {
  constexpr int A = F<M>::A;
  for (index_t o = o0; o < o1; ++o) {
    // wt[k][c]: tap k (row-major 3x3) of the filter (o, c), channels contiguous.
    for (index_t c = 0; c < C; ++c)
      for (int k = 0; k < 9; ++k)
        wt[k * C + c] = flipped ? w[(c * O + o) * 9 + (8 - k)] : w[(o * C + c) * 9 + k];
    for (index_t c = 0; c < C; c += W) {
      const mask_t mk = tail_mask(int(min_of<index_t>(W, C - c)));
      vf gk[9];
      for (int k = 0; k < 9; ++k) gk[k] = load_mask(wt + k * C + c, mk);
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
        for (int l = 0; l < A; ++l) store_mask(U + ((i * A + l) * O + o) * C + c, mk, r[l]);
      }
    }
  }
}

void filter_range(int m, index_t O, index_t C, const float* w, bool flipped, index_t o0, index_t o1, float* U,
                  float* wt) {
  if (m == 4) filter_range<4>(O, C, w, flipped, o0, o1, U, wt);
  else filter_range<2>(O, C, w, flipped, o0, o1, U, wt);
}

// M[xi] (O x G, row stride G) = U[xi] (O x C) @ V[xi] (C x G), each xi: row blocks of at most
// five register tiles, so that the GEMM reads V in place (gemm.cpp).
void products(int A, index_t O, index_t C, index_t G, const float* U, const float* V, float* Mx) {
  const index_t max_rows = 5 * gemm_config::MR;
  const index_t blocks = ceil_div(O, max_rows);
  const index_t rows = round_up(ceil_div(O, blocks), index_t(gemm_config::MR));
  const GemmEpilogue ep;
  for (int xi = 0; xi < A * A; ++xi)
    for (index_t o0 = 0; o0 < O; o0 += rows)
      sgemm(min_of(rows, O - o0), G, C, MatRef{U + (xi * O + o0) * C, C, 1}, MatRef{V + xi * C * G, G, 1},
            Mx + (xi * O + o0) * G, G, ep, 1);
}

// Tiles per group: V and M of the group within half the L2 (a*a*(C+O) floats per tile),
// whole units, at least one unit; tuning().wino_tiles overrides (tests, experiments).
index_t group_units(const Conv2dShape& s, int m, const Geometry& g) {
  const index_t a2 = (m + 2) * (m + 2);
  index_t tiles = tuning().wino_tiles;
  if (tiles <= 0) {
    const long l2 = tuning().cpu.l2 > 0 ? tuning().cpu.l2 : 512 * 1024;
    tiles = index_t(l2 / 2) / (a2 * (s.C + s.O) * index_t(sizeof(float)));
    tiles = max_of<index_t>(tiles, 64);   // below that the GEMMs are too narrow to run well
    tiles = min_of<index_t>(tiles, 512);  // V rows stay short enough to be read in place
  }
  return max_of<index_t>(1, tiles / g.TW);
}

template <int M>
void forward_impl(const Conv2dShape& s, const float* x, const float* w, const float* b, bool relu, float* y,
                  bool flipped) {
  constexpr int A = F<M>::A;
  const Geometry g = geometry(s, M);
  const index_t C = s.C, O = s.O, units = s.N * g.TH;
  const index_t gu = group_units(s, M, g);
  const double flops = 2.0 * double(A * A) * double(O) * double(C) * double(units * g.TW) +
                       double(units * g.TW) * double(A * A) * double(C + O) * 4.0;
  const int nt = threads_for(flops, kMinFlopsPerThread);
  float* U = thread_buffer(kSlotFilter, workspace_floats(A * A * O, C));
  parallel_team_then(
      nt,
      [&](int tid, int team) {  // the filter transform, split over output channels
        const auto [o0, o1] = split_range(O, team, tid);
        if (o0 == o1) return;
        float* wt = thread_buffer(kSlotGroup, workspace_floats(9, C));
        filter_range<M>(O, C, w, flipped, o0, o1, U, wt);
      },
      [&](int tid, int team) {
        const index_t u0 = units * tid / team, u1 = units * (tid + 1) / team;
        if (u0 == u1) return;
        const index_t G = min_of(gu, u1 - u0) * g.TW;  // tiles of the largest group
        const index_t vf_ = A * A * C * G, mf = A * A * O * G, sf = A * M * g.TWp;
        float* V = thread_buffer(kSlotGroup, workspace_floats(1, vf_ + mf + 2 * sf + M * M * g.TWp));
        float* Mx = V + vf_;
        float *D = Mx + mf, *R = D + sf, *Y = R + sf;
        for (index_t ug = u0; ug < u1; ug += gu) {
          const index_t ue = min_of(ug + gu, u1), Gt = (ue - ug) * g.TW;
          for (index_t u = ug; u < ue; ++u)
            input_unit<M>(s, g, x + (u / g.TH) * C * s.H * s.W, u % g.TH, V, C * Gt, Gt, (u - ug) * g.TW, D, R);
          products(A, O, C, Gt, U, V, Mx);
          for (index_t u = ug; u < ue; ++u)
            output_unit<M>(s, g, Mx, O * Gt, Gt, (u - ug) * g.TW, b, relu, u % g.TH,
                           y + (u / g.TH) * O * s.OH * s.OW, Y);
        }
      });
}

}  // namespace

bool eligible(const Conv2dShape& s) {
  return s.kH == 3 && s.kW == 3 && s.sh == 1 && s.sw == 1 && s.dh == 1 && s.dw == 1 && s.C > 0 && s.O > 0 &&
         s.N > 0 && s.OH > 0 && s.OW > 0;
}

bool backward_data_eligible(const Conv2dShape& s) { return eligible(s) && s.ph <= 2 && s.pw <= 2; }

namespace {
// The measured rule (docs/performance.md, "Winograd"): F(2x2, 3x3) where there are enough
// channels for the transformed-domain GEMMs to dominate the transforms.
int auto_tile(const Conv2dShape& s) {
  if (s.C >= 16 && s.O >= 16) return 2;
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

void filter_transform(int m, index_t O, index_t C, const float* w, bool flipped, float* U) {
  std::vector<float> wt(static_cast<std::size_t>(9 * C));
  filter_range(m, O, C, w, flipped, 0, O, U, wt.data());
}

void input_transform(const Conv2dShape& s, int m, const float* x, float* V) {
  const Geometry g = geometry(s, m);
  const index_t T = s.N * g.TH * g.TW;
  std::vector<float> scratch(static_cast<std::size_t>(2 * (m + 2) * m * g.TWp));
  float *D = scratch.data(), *R = D + (m + 2) * m * g.TWp;
  for (index_t u = 0; u < s.N * g.TH; ++u) {
    const float* xn = x + (u / g.TH) * s.C * s.H * s.W;
    if (m == 4) input_unit<4>(s, g, xn, u % g.TH, V, s.C * T, T, u * g.TW, D, R);
    else input_unit<2>(s, g, xn, u % g.TH, V, s.C * T, T, u * g.TW, D, R);
  }
}

void output_transform(const Conv2dShape& s, int m, const float* Mx, const float* b, bool relu, float* y) {
  const Geometry g = geometry(s, m);
  const index_t T = s.N * g.TH * g.TW;
  std::vector<float> Y(static_cast<std::size_t>(m * m * g.TWp));
  for (index_t u = 0; u < s.N * g.TH; ++u) {
    float* yn = y + (u / g.TH) * s.O * s.OH * s.OW;
    if (m == 4) output_unit<4>(s, g, Mx, s.O * T, T, u * g.TW, b, relu, u % g.TH, yn, Y.data());
    else output_unit<2>(s, g, Mx, s.O * T, T, u * g.TW, b, relu, u % g.TH, yn, Y.data());
  }
}

}  // namespace winograd
}  // namespace lamina::cpu::LAMINA_ISA_NS
