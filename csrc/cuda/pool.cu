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

// The geometry in the index type of the launch: int where fits_index32 holds for the arrays a
// kernel indexes (x, y, grad_x, grad_y), else index_t.
template <class I>
struct PoolIdx {
  I H, W, kh, kw, sh, sw, ph, pw, OH, OW;
  static PoolIdx of(const Pool2d& g) {
    return PoolIdx{I(g.H), I(g.W), I(g.kh), I(g.kw), I(g.sh), I(g.sw), I(g.ph), I(g.pw), I(g.OH), I(g.OW)};
  }
};

template <class I>
struct MaxPoolBody {
  const float* x;
  float* y;
  std::int64_t* idx;
  PoolIdx<I> g;
  __device__ void operator()(I t) const {
    const I ow = t % g.OW, oh = (t / g.OW) % g.OH, p = t / (g.OW * g.OH);
    const float* plane = x + p * g.H * g.W;
    float best = 0.0f;
    I bi = -1, nan_i = -1;
    for (I i = 0; i < g.kh; ++i) {
      const I ih = oh * g.sh - g.ph + i;
      if (ih < 0 || ih >= g.H) continue;
      for (I j = 0; j < g.kw; ++j) {
        const I iw = ow * g.sw - g.pw + j;
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

template <class I>
struct MaxPoolBackwardBody {
  const float* grad_y;
  const std::int64_t* idx;
  float* grad_x;
  PoolRanges r;
  I H, W, OH, OW;
  __device__ void operator()(I t) const {
    const I w = t % W, h = (t / W) % H, p = t / (W * H);
    const I cell = h * W + w, base = p * OH * OW;
    const int oh1 = r.row_hi()[h], ow0 = r.col_lo()[w], ow1 = r.col_hi()[w];
    float acc = 0.0f;
    for (int oh = r.row_lo()[h]; oh <= oh1; ++oh)
      for (int ow = ow0; ow <= ow1; ++ow) {
        const I o = base + static_cast<I>(oh) * OW + ow;
        if (idx[o] == cell) acc += grad_y[o];
      }
    grad_x[t] = acc;
  }
};

template <class I>
struct AvgPoolBody {
  const float* x;
  float* y;
  PoolIdx<I> g;
  __device__ void operator()(I t) const {
    const I ow = t % g.OW, oh = (t / g.OW) % g.OH, p = t / (g.OW * g.OH);
    const float* plane = x + p * g.H * g.W;
    float acc = 0.0f;
    for (I i = 0; i < g.kh; ++i) {
      const I ih = oh * g.sh - g.ph + i;
      if (ih < 0 || ih >= g.H) continue;
      for (I j = 0; j < g.kw; ++j) {
        const I iw = ow * g.sw - g.pw + j;
        if (iw >= 0 && iw < g.W) acc += plane[ih * g.W + iw];
      }
    }
    y[t] = acc / static_cast<float>(g.kh * g.kw);
  }
};

template <class I>
struct AvgPoolBackwardBody {
  const float* grad_y;
  float* grad_x;
  PoolIdx<I> g;
  __device__ void operator()(I t) const {
    const I w = t % g.W, h = (t / g.W) % g.H, p = t / (g.W * g.H);
    const float* gy = grad_y + p * g.OH * g.OW;
    const float div = static_cast<float>(g.kh * g.kw);
    const I hp = h + g.ph, wp = w + g.pw;  // padded coordinates
    // windows oh with oh*sh <= hp < oh*sh + kh
    I oh0 = hp >= g.kh ? (hp - g.kh) / g.sh + 1 : 0, oh1 = hp / g.sh;
    I ow0 = wp >= g.kw ? (wp - g.kw) / g.sw + 1 : 0, ow1 = wp / g.sw;
    if (oh1 >= g.OH) oh1 = g.OH - 1;
    if (ow1 >= g.OW) ow1 = g.OW - 1;
    float acc = 0.0f;
    for (I oh = oh0; oh <= oh1; ++oh)
      for (I ow = ow0; ow <= ow1; ++ow) acc += gy[oh * g.OW + ow] / div;
    grad_x[t] = acc;
  }
};

// Whether the pool's arrays (planes x H x W inputs, planes x OH x OW outputs) can be indexed in
// 32 bits.
bool narrow_pool(const Pool2d& g) { return fits_index32(std::max(g.planes * g.H * g.W, g.planes * g.OH * g.OW)); }

}  // namespace

void max_pool2d(const float* x, float* y, std::int64_t* idx, const Pool2d& g) {
  const index_t n = g.planes * g.OH * g.OW;
  if (narrow_pool(g)) launch_each("max_pool2d", MaxPoolBody<int>{x, y, idx, PoolIdx<int>::of(g)}, static_cast<int>(n));
  else launch_each("max_pool2d", MaxPoolBody<index_t>{x, y, idx, PoolIdx<index_t>::of(g)}, n);
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
  const index_t n = g.planes * g.H * g.W;
  if (narrow_pool(g))
    launch_each("max_pool2d_backward",
                MaxPoolBackwardBody<int>{grad_y, idx, grad_x, r, int(g.H), int(g.W), int(g.OH), int(g.OW)},
                static_cast<int>(n));
  else
    launch_each("max_pool2d_backward", MaxPoolBackwardBody<index_t>{grad_y, idx, grad_x, r, g.H, g.W, g.OH, g.OW}, n);
  return -1;
}

void avg_pool2d(const float* x, float* y, const Pool2d& g) {
  const index_t n = g.planes * g.OH * g.OW;
  if (narrow_pool(g)) launch_each("avg_pool2d", AvgPoolBody<int>{x, y, PoolIdx<int>::of(g)}, static_cast<int>(n));
  else launch_each("avg_pool2d", AvgPoolBody<index_t>{x, y, PoolIdx<index_t>::of(g)}, n);
}

void avg_pool2d_backward(const float* grad_y, float* grad_x, const Pool2d& g) {
  const index_t n = g.planes * g.H * g.W;
  if (narrow_pool(g))
    launch_each("avg_pool2d_backward", AvgPoolBackwardBody<int>{grad_y, grad_x, PoolIdx<int>::of(g)}, static_cast<int>(n));
  else
    launch_each("avg_pool2d_backward", AvgPoolBackwardBody<index_t>{grad_y, grad_x, PoolIdx<index_t>::of(g)}, n);
}

}  // namespace lamina::cuda
