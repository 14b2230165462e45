// cuda/rnn_cell.h: the gate non-linearities of one LSTM / GRU step and their backward passes on
// the device (csrc/cuda/rnn_cell.cu), with the CPU kernels' arguments (lamina/rnn_cell.h) and the
// equations of lamina.reference.rnn_cell (PyTorch's gate orders: LSTM i, f, g, o; GRU r, z, n).
// Row-major arrays, gate k of a row in columns [k H, (k + 1) H):
//   lstm_cell:          gates_x, gates_h (N, 4H), c_prev (N, H) -> h, c (N, H), act (N, 4H) = [i, f, g, o]
//   lstm_cell_backward: grad_h, grad_c (N, H; grad_c null: zeros), act, c_prev, c
//                       -> grad_gates (N, 4H), grad_c_prev (N, H)
//   gru_cell:           gates_x, gates_h (N, 3H), h_prev (N, H) -> h (N, H), act (N, 4H) = [r, z, n, h_n]
//   gru_cell_backward:  grad_h, act, h_prev -> grad_gates_x, grad_gates_h (N, 3H), grad_h_prev (N, H)
// Outputs overlap no input.
#pragma once
#include "lamina/cuda/common.h"

namespace lamina::cuda {

void lstm_cell(const float* gates_x, const float* gates_h, const float* c_prev, float* h, float* c, float* act,
               index_t N, index_t H);
void lstm_cell_backward(const float* grad_h, const float* grad_c, const float* act, const float* c_prev,
                        const float* c, float* grad_gates, float* grad_c_prev, index_t N, index_t H);
void gru_cell(const float* gates_x, const float* gates_h, const float* h_prev, float* h, float* act, index_t N,
              index_t H);
void gru_cell_backward(const float* grad_h, const float* act, const float* h_prev, float* grad_gates_x,
                       float* grad_gates_h, float* grad_h_prev, index_t N, index_t H);

}  // namespace lamina::cuda
