// rnn_cell.h: the gate non-linearities of one LSTM / GRU step, float32, row-major (N, .)
// arrays, gate k of a (N, G H) array in columns [k H, (k + 1) H) (PyTorch's order: LSTM i, f,
// g, o; GRU r, z, n). The equations are in python/lamina/reference/rnn_cell.py.
//
//   lstm_cell:          gates_x, gates_h (N, 4H), c_prev (N, H) -> h, c (N, H), act (N, 4H) = [i, f, g, o]
//   lstm_cell_backward: grad_h, grad_c (N, H; grad_c may be null: zeros), act, c_prev, c
//                       -> grad_gates (N, 4H), grad_c_prev (N, H)
//   gru_cell:           gates_x, gates_h (N, 3H), h_prev (N, H) -> h (N, H), act (N, 4H) = [r, z, n, h_n]
//   gru_cell_backward:  grad_h, act, h_prev -> grad_gates_x, grad_gates_h (N, 3H), grad_h_prev (N, H)
// Contiguous, outputs not overlapping inputs. Parallel over rows.
#pragma once
#include "lamina/common.h"

namespace lamina::cpu {
void lstm_cell(const float* gates_x, const float* gates_h, const float* c_prev, float* h, float* c, float* act,
               index_t N, index_t H);
void lstm_cell_backward(const float* grad_h, const float* grad_c, const float* act, const float* c_prev,
                        const float* c, float* grad_gates, float* grad_c_prev, index_t N, index_t H);
void gru_cell(const float* gates_x, const float* gates_h, const float* h_prev, float* h, float* act, index_t N,
              index_t H);
void gru_cell_backward(const float* grad_h, const float* act, const float* h_prev, float* grad_gates_x,
                       float* grad_gates_h, float* grad_h_prev, index_t N, index_t H);
}  // namespace lamina::cpu
