// conv_direct.h: direct convolution for wide planes with few input taps and few output
// channels -- the first layer of an image model (LeNet's conv1: 1 channel, 5x5, 6 outputs,
// 28 wide) -- where im2col + GEMM has a depth of only C*kH*kW (25) and spends as much time
// unrolling the columns (25 copies of every pixel) as multiplying them.
//
//   forward:  y[n, o, oh, ow] = b[o] + sum over taps (c, ki, kj) of w[o, c, ki, kj] *
//                               xp[n, c, oh + ki, ow + kj]               (then ReLU)
//   grad_w:   grad_w[o, c, ki, kj] = sum over n, oh, ow of grad_y[n, o, oh, ow] *
//                               xp[n, c, oh + ki, ow + kj];  grad_b[o] = sum of grad_y[n, o]
// xp: the input planes copied once into zero-padded rows of L floats (pad_planes), so that
// every tap is one unaligned vector load at a fixed offset and no bound is tested. Output
// rows are computed W lanes at a time (the last chunk masked; in grad_w the masked lanes of
// grad_y are zero, so whatever the padded row holds there adds nothing).
// Stride 1 and dilation 1 only. The input gradient: lanes_grad_x below for narrow planes, else
// the GEMM path (conv.cpp).
#pragma once
#include "lamina/conv.h"
#include "lamina/cpu/simd.h"
#include "transpose.h"
#include "vmath.h"

namespace lamina::cpu::LAMINA_ISA_NS::direct {

using namespace simd;

// The broadcast-FMA kernels below read overlapping scalars (x[ow + kj] is x[(ow + 1) + kj - 1]);
// GCC's predictive commoning (-O3) then carries them from one iteration to the next in xmm
// registers, with moves and register-to-register broadcasts that cost more than the FMAs'
// own broadcast loads (measured on LeNet's conv2 grad_w: 494 -> 393 us without it).
#if defined(__GNUC__) && !defined(__clang__)
#define LAMINA_NO_PCOM __attribute__((optimize("no-predictive-commoning")))
#else
#define LAMINA_NO_PCOM
#endif

// Registers of this ISA's vector file (AVX-512: 32, AVX2: 16).
constexpr int kRegs = LAMINA_ISA_ID == 2 ? 32 : 16;
constexpr int kMaxO = 16;     // output channels held in registers by the forward
constexpr int kMaxTaps = 75;  // C * kH * kW (e.g. 3 x 5 x 5)

inline bool eligible(const Conv2dShape& s) {
  return W > 1 && s.sh == 1 && s.sw == 1 && s.dh == 1 && s.dw == 1 && s.O >= 1 && s.O <= kMaxO &&
         s.C * s.kH * s.kW <= kMaxTaps && s.OW >= W && s.ph < s.kH && s.pw < s.kW;
}

// Padded row length and rows per plane.
inline index_t row_len(const Conv2dShape& s) { return round_up(s.OW, index_t(W)) + s.kW - 1; }
inline index_t plane_rows(const Conv2dShape& s) { return s.H + 2 * s.ph; }
inline index_t image_floats(const Conv2dShape& s) { return s.C * plane_rows(s) * row_len(s); }

// Image xn (C, H, W) -> xp (C, H + 2ph, L): zero borders, the input in rows ph.., columns pw..
inline void pad_planes(const Conv2dShape& s, const float* xn, float* xp) {
  const index_t L = row_len(s), Hp = plane_rows(s);
  for (index_t c = 0; c < s.C; ++c)
    for (index_t r = 0; r < Hp; ++r) {
      float* d = xp + (c * Hp + r) * L;
      const index_t ih = r - s.ph;
      for (index_t j = 0; j < L; ++j) d[j] = 0.0f;
      if (ih < 0 || ih >= s.H) continue;
      const float* src = xn + (c * s.H + ih) * s.W;
      const index_t n = min_of(s.W, L - s.pw);
      for (index_t j = 0; j < n; ++j) d[s.pw + j] = src[j];
    }
}

// Output rows [oh0, oh1) of one image from its padded planes; O output channels in registers,
// each tap one load and O broadcast FMAs.
template <int O>
void forward_rows(const Conv2dShape& s, const float* xp, const float* w, const float* b, bool relu,
                  float* yn, index_t oh0, index_t oh1) {
  const index_t L = row_len(s), Hp = plane_rows(s), K = s.C * s.kH * s.kW, P = s.OH * s.OW;
  for (index_t oh = oh0; oh < oh1; ++oh)
    for (index_t ow0 = 0; ow0 < s.OW; ow0 += W) {
      vf acc[O];
#pragma GCC unroll 16
      for (int o = 0; o < O; ++o) acc[o] = zero();
      for (index_t c = 0; c < s.C; ++c)
        for (index_t ki = 0; ki < s.kH; ++ki) {
          const float* row = xp + (c * Hp + oh + ki) * L + ow0;
          const float* wt = w + (c * s.kH + ki) * s.kW;
          for (index_t kj = 0; kj < s.kW; ++kj) {
            const vf xv = load(row + kj);
#pragma GCC unroll 16
            for (int o = 0; o < O; ++o) acc[o] = fma(set1(wt[o * K + kj]), xv, acc[o]);
          }
        }
      const int n = static_cast<int>(min_of<index_t>(W, s.OW - ow0));
#pragma GCC unroll 16
      for (int o = 0; o < O; ++o) {
        // The GEMM path's epilogue order: product + bias, then ReLU.
        vf x = b ? add(acc[o], set1(b[o])) : acc[o];
        if (relu) x = vmath::relu(x);
        float* dst = yn + o * P + oh * s.OW + ow0;
        if (n == W) store(dst, x);
        else store_mask(dst, tail_mask(n), x);
      }
    }
}

using forward_fn = void (*)(const Conv2dShape&, const float*, const float*, const float*, bool, float*,
                            index_t, index_t);
template <std::size_t... I>
constexpr auto make_forward_table(std::index_sequence<I...>) {
  return std::array<forward_fn, sizeof...(I)>{&forward_rows<int(I) + 1>...};
}
inline const auto kForward = make_forward_table(std::make_index_sequence<kMaxO>{});

// Tables of kernel instances F<A, B>::run for A in 1..NA and B in 1..NB, as table[B - 1][A - 1].
template <template <int, int> class F, class Fn, int NA, int NB>
struct KernelTable {
  template <int B, std::size_t... A>
  static constexpr std::array<Fn, NA> row(std::index_sequence<A...>) {
    return {&F<int(A) + 1, B>::run...};
  }
  template <std::size_t... B>
  static constexpr std::array<std::array<Fn, NA>, NB> make(std::index_sequence<B...>) {
    return {row<int(B) + 1>(std::make_index_sequence<NA>{})...};
  }
};

// The grad_w kernels below take the taps a kernel row (c, ki) at a time, in segments of at
// most kMaxSeg adjacent taps (kj0 .. kj0 + KW - 1): the taps of a segment are adjacent in the
// padded planes, so a block needs one input pointer (or one per kernel row), where a block of
// arbitrary taps needs one per tap (which spill to the stack once there are more than a
// handful, each FMA then waiting on a reload) and leaves a partly empty last block.
constexpr int kMaxSeg = 8;

// Segments of a kernel row of kW taps: as few as allowed, as even as possible.
template <class F>
inline void for_each_segment(index_t kW, F&& f) {
  const index_t nseg = ceil_div(kW, index_t(kMaxSeg));
  for (index_t g = 0, j0 = 0; g < nseg; ++g) {
    const index_t len = ceil_div(kW - j0, nseg - g);
    f(j0, len);
    j0 += len;
  }
}

// One image's grad_w contributions for output channels o0 .. o0 + OB and the KW taps kj0 ..
// of kernel row `row` (= c * kH + ki), added to their vector accumulators vacc (O x K vectors
// of W lanes: reduced across lanes once, after the last image). xn: the image's padded
// planes; gyn: its grad_y (O, OH, OW), whose masked lanes are zero, so whatever the padded
// row holds past the plane adds nothing. Image by image, so the image's planes and its grad_y
// stay in L1 across the blocks.
template <int OB, int KW>
struct GradWSeg {
  LAMINA_NO_PCOM static void run(const Conv2dShape& s, const float* xn, const float* gyn, index_t o0,
                                 index_t row, index_t kj0, float* vacc) {
    const index_t L = row_len(s), Hp = plane_rows(s), K = s.C * s.kH * s.kW, P = s.OH * s.OW;
    const float* xb = xn + ((row / s.kH) * Hp + row % s.kH) * L + kj0;
    float* va = vacc + (o0 * K + row * s.kW + kj0) * W;
    vf acc[OB][KW];
#pragma GCC unroll 8
    for (int o = 0; o < OB; ++o)
#pragma GCC unroll 8
      for (int j = 0; j < KW; ++j) acc[o][j] = load(va + (o * K + j) * W);
    for (index_t oh = 0; oh < s.OH; ++oh)
      for (index_t ow0 = 0; ow0 < s.OW; ow0 += W) {
        const int nl = static_cast<int>(min_of<index_t>(W, s.OW - ow0));
        const mask_t m = tail_mask(nl);
        vf dy[OB];
#pragma GCC unroll 8
        for (int o = 0; o < OB; ++o) {
          const float* p = gyn + (o0 + o) * P + oh * s.OW + ow0;
          dy[o] = nl == W ? load(p) : load_mask(p, m);
        }
        const float* xr = xb + oh * L + ow0;
#pragma GCC unroll 8
        for (int j = 0; j < KW; ++j) {
          const vf xv = load(xr + j);
#pragma GCC unroll 8
          for (int o = 0; o < OB; ++o) acc[o][j] = fma(dy[o], xv, acc[o][j]);
        }
      }
#pragma GCC unroll 8
    for (int o = 0; o < OB; ++o)
#pragma GCC unroll 8
      for (int j = 0; j < KW; ++j) store(va + (o * K + j) * W, acc[o][j]);
  }
};

// Output channels per block for a segment of kw taps: OB x kw accumulators + OB gradients + 1 input.
constexpr int kMaxOB = 6;
inline index_t grad_w_channels(index_t kw) { return min_of<index_t>(kMaxOB, (kRegs - 1) / (kw + 1)); }
using grad_w_seg_fn = void (*)(const Conv2dShape&, const float*, const float*, index_t, index_t, index_t, float*);
inline const auto kGradWSeg =
    KernelTable<GradWSeg, grad_w_seg_fn, kMaxOB, kMaxSeg>::make(std::make_index_sequence<kMaxSeg>{});

// One image's grad_w contributions. Channel blocks of the most that fit, the rest in a last
// block (O = 6 with 5 taps: 5 + 1, measured on Zen 4 at 3.7 us per image against 4.2 for
// 4 + 2 and 5.6 for 3 + 3: the wide block's FMAs per load matter more than the narrow one's).
inline void grad_w_image(const Conv2dShape& s, const float* xn, const float* gyn, float* vacc) {
  for (index_t row = 0; row < s.C * s.kH; ++row)
    for_each_segment(s.kW, [&](index_t kj0, index_t kw) {
      const index_t most = grad_w_channels(kw);
      for (index_t o0 = 0; o0 < s.O; o0 += most) {
        const index_t ob = min_of(most, s.O - o0);
        kGradWSeg[static_cast<std::size_t>(kw - 1)][static_cast<std::size_t>(ob - 1)](s, xn, gyn, o0, row, kj0, vacc);
      }
    });
}

// Floats of the vector accumulators grad_w needs.
inline index_t vacc_floats(const Conv2dShape& s) { return s.O * s.C * s.kH * s.kW * W; }

// grad_w (O x K) and grad_b (O) = the contributions of images [0, nimg) of x (N, C, H, W)
// and gy (grad_y from the first of them). xp: one image's padded planes; vacc:
// vacc_floats(s) floats.
inline void grad_w(const Conv2dShape& s, const float* x, index_t nimg, const float* gy, float* xp,
                   float* vacc, float* gw, float* gb) {
  const index_t K = s.C * s.kH * s.kW, P = s.OH * s.OW;
  for (index_t i = 0; i < s.O * K * W; ++i) vacc[i] = 0.0f;
  for (index_t o = 0; o < s.O; ++o) gb[o] = 0.0f;
  for (index_t n = 0; n < nimg; ++n) {
    pad_planes(s, x + n * s.C * s.H * s.W, xp);
    const float* gyn = gy + n * s.O * P;
    grad_w_image(s, xp, gyn, vacc);
    for (index_t o = 0; o < s.O; ++o) {
      const float* p = gyn + o * P;
      vf a = zero();
      index_t i = 0;
      for (; i + W <= P; i += W) a = add(a, load(p + i));
      if (i < P) a = add(a, load_mask(p + i, tail_mask(int(P - i))));
      gb[o] += hsum(a);
    }
  }
  for (index_t i = 0; i < s.O * K; ++i) gw[i] = hsum(load(vacc + i * W));
}

// ---- channels in lanes: narrow planes, up to one vector of output channels ----------------
// LeNet's conv2 (6 channels 14 x 14 -> 16 channels 10 x 10, 5 x 5): rows of 10 outputs would
// leave most lanes of a row-vectorised kernel idle and im2col copies every input 25 times in
// 10-float pieces. Here the lanes are the output channels (O <= 16 on AVX-512: all 16 lanes
// busy for conv2): a chunk of PB outputs of one row is PB accumulators, and each tap is one
// load of the tap's weights for every channel (wT, taps x 16) and PB broadcast FMAs.
//   forward: acc[p][o] = sum over taps (c, ki, kj) of wT[tap][o] * xp[c][oh + ki][ow0 + p + kj]
// The taps are summed in the GEMM path's order, then the bias is added: the same arithmetic.
constexpr int kLanesMaxPB = 12;  // outputs of a row per chunk (12 accumulators + 2 operands)

inline bool lanes_eligible(const Conv2dShape& s) {
  return LAMINA_ISA_ID == 2 && s.sh == 1 && s.sw == 1 && s.dh == 1 && s.dw == 1 && s.O >= 8 &&
         s.O <= W && s.OW < W && s.C * s.kH * s.kW >= 16 && s.ph < s.kH && s.pw < s.kW;
}

// wT (K x W): wT[tap][o] = w[o][tap], lanes past O zero.
inline void transpose_weights(const Conv2dShape& s, const float* w, float* wT) {
  const index_t K = s.C * s.kH * s.kW;
  for (index_t t = 0; t < K; ++t)
    for (index_t o = 0; o < W; ++o) wT[t * W + o] = o < s.O ? w[o * K + t] : 0.0f;
}

template <int PB>
LAMINA_NO_PCOM void lanes_forward_chunk(const Conv2dShape& s, const float* xp, const float* wT, const float* b,
                         bool relu, float* yn, index_t oh, index_t ow0) {
  const index_t L = row_len(s), Hp = plane_rows(s), P = s.OH * s.OW;
  vf acc[PB];
#pragma GCC unroll 16
  for (int p = 0; p < PB; ++p) acc[p] = zero();
  const float* wt = wT;
  for (index_t c = 0; c < s.C; ++c)
    for (index_t ki = 0; ki < s.kH; ++ki) {
      const float* row = xp + (c * Hp + oh + ki) * L + ow0;
      for (index_t kj = 0; kj < s.kW; ++kj, wt += W) {
        const vf wv = load(wt);
#pragma GCC unroll 16
        for (int p = 0; p < PB; ++p) acc[p] = fma(set1(row[kj + p]), wv, acc[p]);
      }
    }
  const vf bv = b ? load_mask(b, tail_mask(static_cast<int>(s.O))) : zero();
  alignas(64) float st[PB][W];
#pragma GCC unroll 16
  for (int p = 0; p < PB; ++p) {
    vf x = b ? add(acc[p], bv) : acc[p];
    if (relu) x = vmath::relu(x);
    store(st[p], x);
  }
  // st (outputs x channels) -> y (channels x outputs): 8 outputs x 8 channels per register
  // transpose, the outputs past a multiple of 8 one by one (3.5 % of the kernel on LeNet's
  // conv2, interleaved microbenchmark, against copying every value on its own).
  float* yr = yn + oh * s.OW + ow0;
  int p0 = 0;
#if LAMINA_ISA_ID == 2  // (this layout's only path: lanes_eligible)
  for (; p0 + 8 <= PB; p0 += 8)
    for (index_t o0 = 0; o0 < s.O; o0 += 8) {
      alignas(32) float t[8 * 8];
      transpose8x8(&st[p0][o0], W, t, 8);
      const index_t nch = min_of<index_t>(8, s.O - o0);
      for (index_t q = 0; q < nch; ++q) _mm256_storeu_ps(yr + (o0 + q) * P + p0, _mm256_load_ps(t + 8 * q));
    }
#endif
  for (index_t o = 0; o < s.O; ++o)
    for (int p = p0; p < PB; ++p) yr[o * P + p] = st[p][o];
}

using lanes_forward_fn = void (*)(const Conv2dShape&, const float*, const float*, const float*, bool,
                                  float*, index_t, index_t);
template <std::size_t... I>
constexpr auto make_lanes_forward_table(std::index_sequence<I...>) {
  return std::array<lanes_forward_fn, sizeof...(I)>{&lanes_forward_chunk<int(I) + 1>...};
}
inline const auto kLanesForward = make_lanes_forward_table(std::make_index_sequence<kLanesMaxPB>{});

// Output rows [oh0, oh1) of one image (padded planes xp).
inline void lanes_forward_rows(const Conv2dShape& s, const float* xp, const float* wT, const float* b,
                               bool relu, float* yn, index_t oh0, index_t oh1) {
  for (index_t oh = oh0; oh < oh1; ++oh)
    for (index_t ow0 = 0; ow0 < s.OW; ow0 += kLanesMaxPB) {
      const index_t pb = min_of<index_t>(kLanesMaxPB, s.OW - ow0);
      kLanesForward[static_cast<std::size_t>(pb - 1)](s, xp, wT, b, relu, yn, oh, ow0);
    }
}

//   grad_w: acc[tap][o] += sum over n, oh, ow of xp[c][oh + ki][ow + kj] * gT[oh, ow][o]
// gT: one image's grad_y transposed to (P x W), channels in lanes. A block: ROWS kernel rows
// (row0 .. , row = c * kH + ki) x the KW taps kj0 .. of each, one accumulator per tap
// (vacc: K x W floats between images).
template <int ROWS, int KW>
struct LanesGradWSeg {
  LAMINA_NO_PCOM static void run(const Conv2dShape& s, const float* xp, const float* gT, index_t row0,
                                 index_t kj0, float* vacc) {
    const index_t L = row_len(s), Hp = plane_rows(s);
    index_t off[ROWS];
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; ++r) {
      const index_t row = row0 + r;
      off[r] = ((row / s.kH) * Hp + row % s.kH) * L + kj0;
    }
    vf acc[ROWS][KW];
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; ++r)
#pragma GCC unroll 8
      for (int j = 0; j < KW; ++j) acc[r][j] = load(vacc + ((row0 + r) * s.kW + kj0 + j) * W);
    for (index_t oh = 0; oh < s.OH; ++oh)
      for (index_t ow = 0; ow < s.OW; ++ow) {
        const vf g = load(gT + (oh * s.OW + ow) * W);
        const float* xr = xp + oh * L + ow;
#pragma GCC unroll 8
        for (int r = 0; r < ROWS; ++r)
#pragma GCC unroll 8
          for (int j = 0; j < KW; ++j) acc[r][j] = fma(set1(xr[off[r] + j]), g, acc[r][j]);
      }
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; ++r)
#pragma GCC unroll 8
      for (int j = 0; j < KW; ++j) store(vacc + ((row0 + r) * s.kW + kj0 + j) * W, acc[r][j]);
  }
};

// Kernel rows per block for segments of kw taps: ROWS x kw accumulators (at most 24) + the
// gradient + the broadcast.
constexpr int kLanesMaxRows = 8;
inline index_t lanes_grad_w_rows(index_t kw) { return min_of<index_t>(kLanesMaxRows, 24 / kw); }
using lanes_grad_w_fn = void (*)(const Conv2dShape&, const float*, const float*, index_t, index_t, float*);
inline const auto kLanesGradWSeg =
    KernelTable<LanesGradWSeg, lanes_grad_w_fn, kLanesMaxRows, kMaxSeg>::make(std::make_index_sequence<kMaxSeg>{});

// One image's contribution to every tap's accumulator.
inline void lanes_grad_w_image(const Conv2dShape& s, const float* xp, const float* gT, float* vacc) {
  const index_t rows = s.C * s.kH;
  for_each_segment(s.kW, [&](index_t kj0, index_t kw) {
    const index_t most = lanes_grad_w_rows(kw);
    for (index_t r0 = 0; r0 < rows; r0 += most) {
      const index_t nr = min_of(most, rows - r0);
      kLanesGradWSeg[static_cast<std::size_t>(kw - 1)][static_cast<std::size_t>(nr - 1)](s, xp, gT, r0, kj0, vacc);
    }
  });
}

// ---- grad_x of narrow planes: an input row in the lanes ------------------------------------
//   grad_x[c, ih, iw] = sum over o, ki, kj of w[o, c, ki, kj] * gy[o, ih + ph - ki, iw + pw - kj]
// (terms whose grad_y index falls outside its plane are zero). The GEMM path computes
// grad_col = w^T grad_y, a product of depth O (16 for conv2, where the micro-kernel spends
// as long on its edges as on its FMAs) and then sums grad_col's 25 shifted copies back into
// grad_x (col2im): together about twice what the FMAs below take. Here a grad_x row (W <= one
// vector) is one accumulator; grad_y's rows are first copied into zero-padded rows gp
// (O x OH x GL), so the kj-th term of a row is one unaligned load at offset kW - 1 - kj; each
// load then feeds every (channel, row) of a CB x RB block whose kernel row ki is in range.
// Rows of grad_y that miss the block are skipped, so no FMA multiplies padding rows.
constexpr int kGradXCB = 6, kGradXRB = 4;  // 24 accumulators + the load + the broadcast

inline bool lanes_grad_x_eligible(const Conv2dShape& s) { return lanes_eligible(s) && s.W <= W; }

// Padded grad_y row: gp[j] = gy[o, oh, j - (kW - 1 - pw)] where that is inside the row, else 0.
inline index_t grad_row_len(const Conv2dShape& s) { return round_up(s.kW - 1 + W, index_t(W)); }
inline index_t grad_x_scratch_floats(const Conv2dShape& s) {
  return s.O * s.OH * grad_row_len(s) + s.O * s.C * s.kH * s.kW;
}

template <int CB>
void lanes_grad_x_block(const Conv2dShape& s, const float* gp, const float* wt, float* gxn, index_t c0,
                        index_t ih0) {
  constexpr int RB = kGradXRB;
  const index_t GL = grad_row_len(s), C = s.C, kW = s.kW;
  vf acc[CB][RB];
#pragma GCC unroll 8
  for (int c = 0; c < CB; ++c)
#pragma GCC unroll 8
    for (int r = 0; r < RB; ++r) acc[c][r] = zero();
  // grad_y rows that reach rows ih0 .. ih0 + RB - 1 (oh = ih + ph - ki).
  const index_t oh_lo = max_of<index_t>(0, ih0 + s.ph - (s.kH - 1));
  const index_t oh_hi = min_of<index_t>(s.OH, ih0 + RB + s.ph);
  const index_t rows = min_of<index_t>(RB, s.H - ih0);
  for (index_t o = 0; o < s.O; ++o)
    for (index_t oh = oh_lo; oh < oh_hi; ++oh) {
      const float* row = gp + (o * s.OH + oh) * GL + (kW - 1);
      // Block row r uses kernel row ki = ki0 + r, in range for r in [r_lo, r_hi).
      const index_t ki0 = ih0 + s.ph - oh;
      const index_t r_lo = max_of<index_t>(0, -ki0), r_hi = min_of<index_t>(rows, s.kH - ki0);
      // wt[((o * kH + ki) * kW + kj) * C + c]: the CB weights of a tap are adjacent.
      const float* w0 = wt + ((o * s.kH + ki0) * kW) * C + c0;
      for (index_t kj = 0; kj < kW; ++kj) {
        const vf v = load(row - kj);
        const float* wk = w0 + kj * C;
#pragma GCC unroll 8
        for (int r = 0; r < RB; ++r) {
          if (r < r_lo || r >= r_hi) continue;
          const float* wr = wk + r * kW * C;
#pragma GCC unroll 8
          for (int c = 0; c < CB; ++c) acc[c][r] = fma(set1(wr[c]), v, acc[c][r]);
        }
      }
    }
  const mask_t m = tail_mask(static_cast<int>(s.W));
#pragma GCC unroll 8
  for (int c = 0; c < CB; ++c)
#pragma GCC unroll 8
    for (int r = 0; r < RB; ++r)
      if (r < rows) store_mask(gxn + ((c0 + c) * s.H + ih0 + r) * s.W, m, acc[c][r]);
}

using lanes_grad_x_fn = void (*)(const Conv2dShape&, const float*, const float*, float*, index_t, index_t);
template <std::size_t... I>
constexpr auto make_lanes_grad_x_table(std::index_sequence<I...>) {
  return std::array<lanes_grad_x_fn, sizeof...(I)>{&lanes_grad_x_block<int(I) + 1>...};
}
inline const auto kLanesGradX = make_lanes_grad_x_table(std::make_index_sequence<kGradXCB>{});

// grad_x of images [0, nimg) (overwritten) from gy (their grad_y) and w; scratch:
// grad_x_scratch_floats(s) floats.
inline void lanes_grad_x(const Conv2dShape& s, const float* w, index_t nimg, const float* gy, float* scratch,
                         float* gx) {
  const index_t GL = grad_row_len(s), P = s.OH * s.OW, D = s.kW - 1 - s.pw, taps = s.kH * s.kW;
  float* gp = scratch;
  float* wt = gp + s.O * s.OH * GL;
  for (index_t o = 0; o < s.O; ++o)
    for (index_t c = 0; c < s.C; ++c)
      for (index_t t = 0; t < taps; ++t) wt[(o * taps + t) * s.C + c] = w[(o * s.C + c) * taps + t];
  for (index_t i = 0; i < s.O * s.OH * GL; ++i) gp[i] = 0.0f;  // the padding stays zero
  for (index_t n = 0; n < nimg; ++n) {
    const float* gyn = gy + n * s.O * P;
    for (index_t r = 0; r < s.O * s.OH; ++r)
      for (index_t j = 0; j < s.OW; ++j) gp[r * GL + D + j] = gyn[r * s.OW + j];
    float* gxn = gx + n * s.C * s.H * s.W;
    for (index_t c0 = 0; c0 < s.C; c0 += kGradXCB) {
      const auto fn = kLanesGradX[static_cast<std::size_t>(min_of<index_t>(kGradXCB, s.C - c0) - 1)];
      for (index_t ih0 = 0; ih0 < s.H; ih0 += kGradXRB) fn(s, gp, wt, gxn, c0, ih0);
    }
  }
}

// Floats of the scratch lanes_grad_w (and lanes_grad_x after it) needs.
inline index_t lanes_scratch_floats(const Conv2dShape& s) {
  return max_of(image_floats(s) + (s.OH * s.OW + s.C * s.kH * s.kW + 1) * W, grad_x_scratch_floats(s));
}

// gT (P x W) = one image's grad_y (O x P) transposed, lanes past O zero: 8 x 8 register
// transposes (a strided scalar copy of it took a tenth of conv2's backward).
inline void transpose_grad_y(const Conv2dShape& s, const float* gyn, float* gT) {
  const index_t P = s.OH * s.OW, p8 = P - P % 8;
#if LAMINA_ISA_ID >= 1
  for (index_t o0 = 0; o0 < W; o0 += 8) {
    const int rows = static_cast<int>(min_of<index_t>(8, max_of<index_t>(0, s.O - o0)));
    if (rows == 0) {
      for (index_t p = 0; p < P; ++p)
        for (index_t o = o0; o < o0 + 8; ++o) gT[p * W + o] = 0.0f;
      continue;
    }
    for (index_t p0 = 0; p0 < p8; p0 += 8) transpose8xr(gyn + o0 * P + p0, P, rows, gT + p0 * W + o0, W);
    if (rows < 8)
      for (index_t p = 0; p < p8; ++p)
        for (index_t o = o0 + rows; o < o0 + 8; ++o) gT[p * W + o] = 0.0f;
  }
#else
  (void)p8;
#endif
  for (index_t p = LAMINA_ISA_ID >= 1 ? p8 : 0; p < P; ++p)
    for (index_t o = 0; o < W; ++o) gT[p * W + o] = o < s.O ? gyn[o * P + p] : 0.0f;
}

// grad_w (O x K) and grad_b (O) = the contributions of images [0, nimg) of x and gy.
inline void lanes_grad_w(const Conv2dShape& s, const float* x, index_t nimg, const float* gy, float* scratch,
                         float* gw, float* gb) {
  const index_t K = s.C * s.kH * s.kW, P = s.OH * s.OW;
  float* xp = scratch;
  float* gT = xp + image_floats(s);
  float* vacc = gT + P * W;
  float* bacc = vacc + K * W;
  for (index_t i = 0; i < (K + 1) * W; ++i) vacc[i] = 0.0f;
  for (index_t n = 0; n < nimg; ++n) {
    pad_planes(s, x + n * s.C * s.H * s.W, xp);
    const float* gyn = gy + n * s.O * P;
    transpose_grad_y(s, gyn, gT);
    vf bsum = load(bacc);
    for (index_t p = 0; p < P; ++p) bsum = add(bsum, load(gT + p * W));
    store(bacc, bsum);
    lanes_grad_w_image(s, xp, gT, vacc);
  }
  for (index_t o = 0; o < s.O; ++o) {
    for (index_t t = 0; t < K; ++t) gw[o * K + t] = vacc[t * W + o];
    gb[o] = bacc[o];
  }
}

}  // namespace lamina::cpu::LAMINA_ISA_NS::direct
