// upsample.cpp: nearest-neighbour 2-D upsampling by an integer factor s, NCHW float32, forward
// and backward. Compiled once per ISA.
//
//   forward   x (planes, H, W) -> y (planes, sH, sW):   y[p, i, j] = x[p, i / s, j / s]
//   backward  grad_y (planes, sH, sW) -> grad_x (planes, H, W):
//             grad_x[p, h, w] = sum_{a, b < s} grad_y[p, h s + a, w s + b]
//
// Work is split over input rows (p, h), each owning s output rows (forward) or one grad_x row
// (backward), so threads never write the same memory. Forward: the first output row of the
// block is built by repeating each input value s times, the other s - 1 rows are copies of it.
// Backward: the s grad_y rows of a block are added into a per-thread row with vector adds
// (rows in order a = 0 .. s-1), then each group of s adjacent sums is added (b in order).
// s == 1 is a plain copy both ways.
#include "lamina/upsample.h"

#include <cstring>

#include "eltwise.h"
#include "workspace.h"

namespace lamina::cpu::LAMINA_ISA_NS {
namespace {

using namespace simd;

constexpr double kPerThread = 48 * 1024;  // output (forward) / input (backward) elements

void repeat_row(const float* x, float* y, index_t W, index_t s) {
  if (s == 2) {
    for (index_t w = 0; w < W; ++w) y[2 * w] = y[2 * w + 1] = x[w];
    return;
  }
  for (index_t w = 0; w < W; ++w) {
    const float v = x[w];
    float* o = y + w * s;
    for (index_t b = 0; b < s; ++b) o[b] = v;
  }
}

}  // namespace

void upsample_nearest2d(const float* x, float* y, index_t planes, index_t H, index_t W,
                                index_t s) {
  const index_t rows = planes * H, OW = W * s;
  if (rows <= 0 || W <= 0) return;
  const auto row_bytes = static_cast<std::size_t>(OW) * sizeof(float);
  parallel_range(rows, threads_for(double(rows) * double(OW) * double(s), kPerThread),
                 [&](index_t lo, index_t hi) {
                   for (index_t r = lo; r < hi; ++r) {
                     float* y0 = y + r * s * OW;  // row (p, h) of x -> rows (p, h s + a) of y
                     repeat_row(x + r * W, y0, W, s);
                     for (index_t a = 1; a < s; ++a) std::memcpy(y0 + a * OW, y0, row_bytes);
                   }
                 }, 1);
}

void upsample_nearest2d_backward(const float* grad_y, float* grad_x, index_t planes, index_t H,
                                 index_t W, index_t s) {
  const index_t rows = planes * H, OW = W * s;
  if (rows <= 0 || W <= 0) return;
  parallel_range(rows, threads_for(double(rows) * double(OW) * double(s), kPerThread),
                 [&](index_t lo, index_t hi) {
                   float* acc = s == 1 ? nullptr : thread_buffer(0, workspace_floats(1, OW));
                   for (index_t r = lo; r < hi; ++r) {
                     const float* g = grad_y + r * s * OW;
                     float* gx = grad_x + r * W;
                     if (s == 1) {
                       std::memcpy(gx, g, static_cast<std::size_t>(W) * sizeof(float));
                       continue;
                     }
                     map2(g, g + OW, acc, OW, [](vf u, vf v) { return add(u, v); });
                     for (index_t a = 2; a < s; ++a)
                       map2(acc, g + a * OW, acc, OW, [](vf u, vf v) { return add(u, v); });
                     for (index_t w = 0; w < W; ++w) {
                       const float* blk = acc + w * s;
                       float t = blk[0];
                       for (index_t b = 1; b < s; ++b) t += blk[b];
                       gx[w] = t;
                     }
                   }
                 }, 1);
}

}  // namespace lamina::cpu::LAMINA_ISA_NS
