// pool.cu: max_pool2d, avg_pool2d and their backward passes (lamina/cuda/pool.h): forward one
// thread per output; backward one thread per input cell.
//   max_pool2d_backward gathers, deterministically, in two passes, since it sees only grad_y, idx
//   and the shapes, not the windows: MaxPoolRangesBody (one thread per output) checks each index,
//   recording the first out-of-range position, and notes for each input row ih the range of
//   output rows oh whose index lies in row ih (for each input column the range of output
//   columns), with integer atomic min / max; then MaxPoolBackwardBody (one thread per input cell)
//   sums grad_y over the outputs of those ranges whose index names the cell, in increasing output
//   order: the CPU's scatter order, so the same bits. For indices made by max_pool2d a range spans
//   about kernel / stride outputs.
//   avg_pool2d_backward gathers (one thread per input cell, the windows that cover it).
#include "launch.cuh"
#include "lamina/cuda/device.h"
#include "lamina/cuda/pool.h"

namespace lamina::cuda {
namespace {

struct MaxPoolBody {
  const float* x;
  float* y;
  std::int64_t* idx;
  Pool2d g;
  __device__ void operator()(index_t t) const {
    const index_t ow = t % g.OW, oh = (t / g.OW) % g.OH, p = t / (g.OW * g.OH);
    const float* plane = x + p * g.H * g.W;
    float best = 0.0f;
    index_t bi = -1, nan_i = -1;
    for (index_t i = 0; i < g.kh; ++i) {
      const index_t ih = oh * g.sh - g.ph + i;
      if (ih < 0 || ih >= g.H) continue;
      for (index_t j = 0; j < g.kw; ++j) {
        const index_t iw = ow * g.sw - g.pw + j;
        if (iw < 0 || iw >= g.W) continue;
        const float v = plane[ih * g.W + iw];
        if (v != v) {
          nan_i = ih * g.W + iw;
        } else if (bi < 0 || v > best) {
          best = v;
          bi = ih * g.W + iw;
        }
      }
    }
    if (nan_i >= 0) {
      y[t] = plane[nan_i];
      idx[t] = nan_i;
    } else {
      y[t] = best;
      idx[t] = bi;
    }
  }
};

// Per input row and column, the range [lo, hi] of output rows / columns whose index points there
// (lo starts at INT_MAX, hi at -1: an empty range). Layout of `ranges`: row_lo (H), col_lo (W),
// row_hi (H), col_hi (W).
struct PoolRanges {
  int* lo;  // H + W
  int* hi;  // H + W
  index_t H;
  __device__ int* row_lo() const { return lo; }
  __device__ int* col_lo() const { return lo + H; }
  __device__ int* row_hi() const { return hi; }
  __device__ int* col_hi() const { return hi + H; }
};

struct MaxPoolRangesBody {
  const std::int64_t* idx;
  unsigned long long* bad;
  PoolRanges r;
  index_t H, W, OH, OW;
  __device__ void operator()(index_t t) const {
    const std::int64_t k = idx[t];
    if (k < 0 || k >= H * W) {
      record_bad(bad, t);
      return;
    }
    const int oh = static_cast<int>((t / OW) % OH), ow = static_cast<int>(t % OW);
    const index_t ih = k / W, iw = k % W;
    atomicMin(r.row_lo() + ih, oh);
    atomicMax(r.row_hi() + ih, oh);
    atomicMin(r.col_lo() + iw, ow);
    atomicMax(r.col_hi() + iw, ow);
  }
};

struct MaxPoolBackwardBody {
  const float* grad_y;
  const std::int64_t* idx;
  float* grad_x;
  PoolRanges r;
  index_t H, W, OH, OW;
  __device__ void operator()(index_t t) const {
    const index_t w = t % W, h = (t / W) % H, p = t / (W * H);
    const index_t cell = h * W + w, base = p * OH * OW;
    const int oh1 = r.row_hi()[h], ow0 = r.col_lo()[w], ow1 = r.col_hi()[w];
    float acc = 0.0f;
    for (int oh = r.row_lo()[h]; oh <= oh1; ++oh)
      for (int ow = ow0; ow <= ow1; ++ow) {
        const index_t o = base + static_cast<index_t>(oh) * OW + ow;
        if (idx[o] == cell) acc += grad_y[o];
      }
    grad_x[t] = acc;
  }
};

struct AvgPoolBody {
  const float* x;
  float* y;
  Pool2d g;
  __device__ void operator()(index_t t) const {
    const index_t ow = t % g.OW, oh = (t / g.OW) % g.OH, p = t / (g.OW * g.OH);
    const float* plane = x + p * g.H * g.W;
    float acc = 0.0f;
    for (index_t i = 0; i < g.kh; ++i) {
      const index_t ih = oh * g.sh - g.ph + i;
      if (ih < 0 || ih >= g.H) continue;
      for (index_t j = 0; j < g.kw; ++j) {
        const index_t iw = ow * g.sw - g.pw + j;
        if (iw >= 0 && iw < g.W) acc += plane[ih * g.W + iw];
      }
    }
    y[t] = acc / static_cast<float>(g.kh * g.kw);
  }
};

struct AvgPoolBackwardBody {
  const float* grad_y;
  float* grad_x;
  Pool2d g;
  __device__ void operator()(index_t t) const {
    const index_t w = t % g.W, h = (t / g.W) % g.H, p = t / (g.W * g.H);
    const float* gy = grad_y + p * g.OH * g.OW;
    const float div = static_cast<float>(g.kh * g.kw);
    const index_t hp = h + g.ph, wp = w + g.pw;  // padded coordinates
    // windows oh with oh*sh <= hp < oh*sh + kh
    index_t oh0 = hp >= g.kh ? (hp - g.kh) / g.sh + 1 : 0, oh1 = hp / g.sh;
    index_t ow0 = wp >= g.kw ? (wp - g.kw) / g.sw + 1 : 0, ow1 = wp / g.sw;
    if (oh1 >= g.OH) oh1 = g.OH - 1;
    if (ow1 >= g.OW) ow1 = g.OW - 1;
    float acc = 0.0f;
    for (index_t oh = oh0; oh <= oh1; ++oh)
      for (index_t ow = ow0; ow <= ow1; ++ow) acc += gy[oh * g.OW + ow] / div;
    grad_x[t] = acc;
  }
};

}  // namespace

void max_pool2d(const float* x, float* y, std::int64_t* idx, const Pool2d& g) {
  launch_each("max_pool2d", MaxPoolBody{x, y, idx, g}, g.planes * g.OH * g.OW);
}

index_t max_pool2d_backward(const float* grad_y, const std::int64_t* idx, float* grad_x, const Pool2d& g) {
  if (g.OH >= (index_t(1) << 31) || g.OW >= (index_t(1) << 31))
    throw Error("lamina.cuda: max_pool2d_backward: grad_y's height and width must be below 2^31");
  TempBuffer ranges(sizeof(int) * 2 * static_cast<std::size_t>(g.H + g.W));
  int* lo = static_cast<int*>(ranges.p);
  const PoolRanges r{lo, lo + g.H + g.W, g.H};
  memset_async(r.lo, 0x7F, sizeof(int) * static_cast<std::size_t>(g.H + g.W));  // 0x7F7F7F7F: above any row
  memset_async(r.hi, 0xFF, sizeof(int) * static_cast<std::size_t>(g.H + g.W));  // -1
  const index_t bad = first_bad("max_pool2d_backward (index ranges)",
                                MaxPoolRangesBody{idx, scratch().bad, r, g.H, g.W, g.OH, g.OW}, g.planes * g.OH * g.OW);
  if (bad >= 0) return bad;
  launch_each("max_pool2d_backward", MaxPoolBackwardBody{grad_y, idx, grad_x, r, g.H, g.W, g.OH, g.OW},
              g.planes * g.H * g.W);
  return -1;
}

void avg_pool2d(const float* x, float* y, const Pool2d& g) {
  launch_each("avg_pool2d", AvgPoolBody{x, y, g}, g.planes * g.OH * g.OW);
}

void avg_pool2d_backward(const float* grad_y, float* grad_x, const Pool2d& g) {
  launch_each("avg_pool2d_backward", AvgPoolBackwardBody{grad_y, grad_x, g}, g.planes * g.H * g.W);
}

}  // namespace lamina::cuda
