// rnn_cell.cpp: the element-wise part of one LSTM / GRU step (the gate non-linearities, the
// cell and hidden updates) and its backward, float32, compiled once per ISA. Layouts and
// equations: lamina/rnn_cell.h and python/lamina/reference/rnn_cell.py.
//
// Each row n is independent: rows are split over threads, and within a row the H columns of
// every gate are walked W lanes at a time (a masked partial vector at the end), reading the G
// gate blocks of that column range together so each value is loaded once. sigmoid and tanh are
// vmath.h's (accuracy stated there).
#include "lamina/rnn_cell.h"

#include "eltwise.h"
#include "vmath.h"

namespace lamina::cpu::LAMINA_ISA_NS {
namespace {

using namespace simd;

constexpr double kPerThread = 4096;  // hidden units (a few transcendentals each)

// body(row) for every row, split over threads when the work is worth it.
template <class Body>
void rows(index_t N, index_t H, Body&& body) {
  parallel_for(N, threads_for(double(N) * double(H), kPerThread), body);
}

// f(j, len) over column blocks [j, j + len) of [0, H), len <= W.
template <class F>
inline void columns(index_t H, F&& f) {
  for (index_t j = 0; j < H; j += W) f(j, min_of<index_t>(W, H - j));
}

inline vf ld(const float* p, index_t len) { return load_n(p, len, 0.0f); }
inline vf one() { return set1(1.0f); }

}  // namespace

void lstm_cell(const float* gates_x, const float* gates_h, const float* c_prev, float* h, float* c, float* act,
               index_t N, index_t H) {
  rows(N, H, [&](index_t n) {
    const float* gx = gates_x + n * 4 * H;
    const float* gh = gates_h + n * 4 * H;
    float* a = act + n * 4 * H;
    columns(H, [&](index_t j, index_t len) {
      const vf i = vmath::sigmoid(add(ld(gx + j, len), ld(gh + j, len)));
      const vf f = vmath::sigmoid(add(ld(gx + H + j, len), ld(gh + H + j, len)));
      const vf g = vmath::tanh(add(ld(gx + 2 * H + j, len), ld(gh + 2 * H + j, len)));
      const vf o = vmath::sigmoid(add(ld(gx + 3 * H + j, len), ld(gh + 3 * H + j, len)));
      const vf cn = fma(f, ld(c_prev + n * H + j, len), mul(i, g));
      store_n(c + n * H + j, len, cn);
      store_n(h + n * H + j, len, mul(o, vmath::tanh(cn)));
      store_n(a + j, len, i);
      store_n(a + H + j, len, f);
      store_n(a + 2 * H + j, len, g);
      store_n(a + 3 * H + j, len, o);
    });
  });
}

void lstm_cell_backward(const float* grad_h, const float* grad_c, const float* act, const float* c_prev,
                        const float* c, float* grad_gates, float* grad_c_prev, index_t N, index_t H) {
  rows(N, H, [&](index_t n) {
    const float* a = act + n * 4 * H;
    float* gg = grad_gates + n * 4 * H;
    columns(H, [&](index_t j, index_t len) {
      const index_t r = n * H + j;
      const vf i = ld(a + j, len), f = ld(a + H + j, len), g = ld(a + 2 * H + j, len), o = ld(a + 3 * H + j, len);
      const vf gh = ld(grad_h + r, len);
      const vf tc = vmath::tanh(ld(c + r, len));
      vf dc = mul(mul(gh, o), sub(one(), mul(tc, tc)));
      if (grad_c != nullptr) dc = add(dc, ld(grad_c + r, len));
      store_n(gg + j, len, mul(mul(dc, g), mul(i, sub(one(), i))));
      store_n(gg + H + j, len, mul(mul(dc, ld(c_prev + r, len)), mul(f, sub(one(), f))));
      store_n(gg + 2 * H + j, len, mul(mul(dc, i), sub(one(), mul(g, g))));
      store_n(gg + 3 * H + j, len, mul(mul(gh, tc), mul(o, sub(one(), o))));
      store_n(grad_c_prev + r, len, mul(dc, f));
    });
  });
}

void gru_cell(const float* gates_x, const float* gates_h, const float* h_prev, float* h, float* act, index_t N,
              index_t H) {
  rows(N, H, [&](index_t n) {
    const float* gx = gates_x + n * 3 * H;
    const float* gh = gates_h + n * 3 * H;
    float* a = act + n * 4 * H;
    columns(H, [&](index_t j, index_t len) {
      const vf r = vmath::sigmoid(add(ld(gx + j, len), ld(gh + j, len)));
      const vf z = vmath::sigmoid(add(ld(gx + H + j, len), ld(gh + H + j, len)));
      const vf hn = ld(gh + 2 * H + j, len);
      const vf nn = vmath::tanh(fma(r, hn, ld(gx + 2 * H + j, len)));
      const vf hp = ld(h_prev + n * H + j, len);
      store_n(h + n * H + j, len, fma(z, sub(hp, nn), nn));  // (1 - z) n + z h_prev
      store_n(a + j, len, r);
      store_n(a + H + j, len, z);
      store_n(a + 2 * H + j, len, nn);
      store_n(a + 3 * H + j, len, hn);
    });
  });
}

void gru_cell_backward(const float* grad_h, const float* act, const float* h_prev, float* grad_gates_x,
                       float* grad_gates_h, float* grad_h_prev, index_t N, index_t H) {
  rows(N, H, [&](index_t n) {
    const float* a = act + n * 4 * H;
    float* gx = grad_gates_x + n * 3 * H;
    float* gh = grad_gates_h + n * 3 * H;
    columns(H, [&](index_t j, index_t len) {
      const index_t row = n * H + j;
      const vf r = ld(a + j, len), z = ld(a + H + j, len), nn = ld(a + 2 * H + j, len), hn = ld(a + 3 * H + j, len);
      const vf g = ld(grad_h + row, len);
      const vf dn = mul(mul(g, sub(one(), z)), sub(one(), mul(nn, nn)));
      const vf dz = mul(mul(g, sub(ld(h_prev + row, len), nn)), mul(z, sub(one(), z)));
      const vf dr = mul(mul(dn, hn), mul(r, sub(one(), r)));
      store_n(gx + j, len, dr);
      store_n(gx + H + j, len, dz);
      store_n(gx + 2 * H + j, len, dn);
      store_n(gh + j, len, dr);
      store_n(gh + H + j, len, dz);
      store_n(gh + 2 * H + j, len, mul(dn, r));
      store_n(grad_h_prev + row, len, mul(g, z));
    });
  });
}

}  // namespace lamina::cpu::LAMINA_ISA_NS
