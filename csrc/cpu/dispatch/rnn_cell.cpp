// rnn_cell.cpp: the LSTM / GRU cell entry points of lamina/rnn_cell.h, each a switch to its
// per-ISA twin in csrc/cpu/kernels/rnn_cell.cpp (isa_kernel.h). Compiled once, with no arch flags.
#include "lamina/rnn_cell.h"

#include "isa_kernel.h"

LAMINA_ISA_KERNEL(lstm_cell)
LAMINA_ISA_KERNEL(lstm_cell_backward)
LAMINA_ISA_KERNEL(gru_cell)
LAMINA_ISA_KERNEL(gru_cell_backward)

namespace lamina::cpu {
void lstm_cell(const float* gates_x, const float* gates_h, const float* c_prev, float* h, float* c, float* act,
               index_t N, index_t H) {
  LAMINA_DISPATCH(lstm_cell, gates_x, gates_h, c_prev, h, c, act, N, H)
}
void lstm_cell_backward(const float* grad_h, const float* grad_c, const float* act, const float* c_prev,
                        const float* c, float* grad_gates, float* grad_c_prev, index_t N, index_t H) {
  LAMINA_DISPATCH(lstm_cell_backward, grad_h, grad_c, act, c_prev, c, grad_gates, grad_c_prev, N, H)
}
void gru_cell(const float* gates_x, const float* gates_h, const float* h_prev, float* h, float* act, index_t N,
              index_t H) {
  LAMINA_DISPATCH(gru_cell, gates_x, gates_h, h_prev, h, act, N, H)
}
void gru_cell_backward(const float* grad_h, const float* act, const float* h_prev, float* grad_gates_x,
                       float* grad_gates_h, float* grad_h_prev, index_t N, index_t H) {
  LAMINA_DISPATCH(gru_cell_backward, grad_h, act, h_prev, grad_gates_x, grad_gates_h, grad_h_prev, N, H)
}
}  // namespace lamina::cpu
