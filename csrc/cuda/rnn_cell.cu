// rnn_cell.cu: lstm_cell, gru_cell and their backward passes (lamina/cuda/rnn_cell.h): one
// grid-stride launch each over the N * H hidden units, one thread per unit (n, j) computing
// every gate of that unit (reading the G gate columns j, H + j, ... of row n, writing the
// unit's state and its act / gradient columns). Equations: lamina.reference.rnn_cell.
//   sigmoid(v) from e = e^-|v| (no overflow for either sign), tanh: tanhf.
#include "launch.cuh"
#include "lamina/cuda/rnn_cell.h"

namespace lamina::cuda {
namespace {

__device__ __forceinline__ float sigmoid_of(float v) {
  const float e = expf(-fabsf(v));
  return v >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

struct LstmCell {
  const float *gates_x, *gates_h, *c_prev;
  float *h, *c, *act;
  index_t H;
  __device__ void operator()(index_t t) const {  // t = n H + j
    const index_t n = t / H, r = t + 3 * n * H;  // r = n 4H + j
    const float i = sigmoid_of(gates_x[r] + gates_h[r]);
    const float f = sigmoid_of(gates_x[r + H] + gates_h[r + H]);
    const float g = tanhf(gates_x[r + 2 * H] + gates_h[r + 2 * H]);
    const float o = sigmoid_of(gates_x[r + 3 * H] + gates_h[r + 3 * H]);
    const float cn = f * c_prev[t] + i * g;
    c[t] = cn;
    h[t] = o * tanhf(cn);
    act[r] = i;
    act[r + H] = f;
    act[r + 2 * H] = g;
    act[r + 3 * H] = o;
  }
};

struct LstmCellBackward {
  const float *grad_h, *grad_c, *act, *c_prev, *c;
  float *grad_gates, *grad_c_prev;
  index_t H;
  __device__ void operator()(index_t t) const {
    const index_t n = t / H, r = t + 3 * n * H;
    const float i = act[r], f = act[r + H], g = act[r + 2 * H], o = act[r + 3 * H];
    const float gh = grad_h[t], tc = tanhf(c[t]);
    float dc = gh * o * (1.0f - tc * tc);
    if (grad_c != nullptr) dc += grad_c[t];
    grad_gates[r] = dc * g * i * (1.0f - i);
    grad_gates[r + H] = dc * c_prev[t] * f * (1.0f - f);
    grad_gates[r + 2 * H] = dc * i * (1.0f - g * g);
    grad_gates[r + 3 * H] = gh * tc * o * (1.0f - o);
    grad_c_prev[t] = dc * f;
  }
};

struct GruCell {
  const float *gates_x, *gates_h, *h_prev;
  float *h, *act;
  index_t H;
  __device__ void operator()(index_t t) const {
    const index_t n = t / H, q = t + 2 * n * H, a = t + 3 * n * H;  // q = n 3H + j, a = n 4H + j
    const float r = sigmoid_of(gates_x[q] + gates_h[q]);
    const float z = sigmoid_of(gates_x[q + H] + gates_h[q + H]);
    const float hn = gates_h[q + 2 * H];
    const float nn = tanhf(gates_x[q + 2 * H] + r * hn);
    h[t] = (1.0f - z) * nn + z * h_prev[t];
    act[a] = r;
    act[a + H] = z;
    act[a + 2 * H] = nn;
    act[a + 3 * H] = hn;
  }
};

struct GruCellBackward {
  const float *grad_h, *act, *h_prev;
  float *grad_gates_x, *grad_gates_h, *grad_h_prev;
  index_t H;
  __device__ void operator()(index_t t) const {
    const index_t n = t / H, q = t + 2 * n * H, a = t + 3 * n * H;
    const float r = act[a], z = act[a + H], nn = act[a + 2 * H], hn = act[a + 3 * H];
    const float g = grad_h[t];
    const float dn = g * (1.0f - z) * (1.0f - nn * nn);
    const float dz = g * (h_prev[t] - nn) * z * (1.0f - z);
    const float dr = dn * hn * r * (1.0f - r);
    grad_gates_x[q] = dr;
    grad_gates_x[q + H] = dz;
    grad_gates_x[q + 2 * H] = dn;
    grad_gates_h[q] = dr;
    grad_gates_h[q + H] = dz;
    grad_gates_h[q + 2 * H] = dn * r;
    grad_h_prev[t] = g * z;
  }
};

}  // namespace

void lstm_cell(const float* gates_x, const float* gates_h, const float* c_prev, float* h, float* c, float* act,
               index_t N, index_t H) {
  launch_each("lstm_cell", LstmCell{gates_x, gates_h, c_prev, h, c, act, H}, N * H);
}

void lstm_cell_backward(const float* grad_h, const float* grad_c, const float* act, const float* c_prev,
                        const float* c, float* grad_gates, float* grad_c_prev, index_t N, index_t H) {
  launch_each("lstm_cell_backward", LstmCellBackward{grad_h, grad_c, act, c_prev, c, grad_gates, grad_c_prev, H},
              N * H);
}

void gru_cell(const float* gates_x, const float* gates_h, const float* h_prev, float* h, float* act, index_t N,
              index_t H) {
  launch_each("gru_cell", GruCell{gates_x, gates_h, h_prev, h, act, H}, N * H);
}

void gru_cell_backward(const float* grad_h, const float* act, const float* h_prev, float* grad_gates_x,
                       float* grad_gates_h, float* grad_h_prev, index_t N, index_t H) {
  launch_each("gru_cell_backward", GruCellBackward{grad_h, act, h_prev, grad_gates_x, grad_gates_h, grad_h_prev, H},
              N * H);
}

}  // namespace lamina::cuda
