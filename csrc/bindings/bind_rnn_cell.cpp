// bind_rnn_cell.cpp: lstm_cell, gru_cell and their backward passes (float32, row-major 2-D
// arrays, gate blocks of H columns). Validates every argument (naming it), allocates the
// results, releases the GIL around the kernel.
#include <string>
#include <vector>

#include "bind_eltwise.h"
#include "lamina/rnn_cell.h"

namespace lamina::bind {
namespace {

// A (rows, cols) float32 C-contiguous array; a shape other than the one expected names `name`.
View matrix(py::handle obj, const char* name, index_t rows = -1, index_t cols = -1) {
  View v = contig_arg(obj, name, 2);
  if ((rows >= 0 && v.shape[0] != rows) || (cols >= 0 && v.shape[1] != cols))
    value_error(std::string(name) + " must have shape (" + std::to_string(rows) + ", " + std::to_string(cols) +
                "), got " + v.shape_str());
  return v;
}

// (N, H) of gates_x / gates_h (N, G H): same shape, G H columns.
std::pair<index_t, index_t> gates_arg(const View& gx, py::handle gh_obj, View& gh, int G) {
  if (gx.shape[1] % G != 0)
    value_error("gates_x must have " + std::to_string(G) + " * hidden_size columns, got shape " + gx.shape_str());
  gh = matrix(gh_obj, "gates_h", gx.shape[0], gx.shape[1]);
  return {gx.shape[0], gx.shape[1] / G};
}

// (N, H) of act (N, 4H).
std::pair<index_t, index_t> act_arg(const View& act) {
  if (act.shape[1] % 4 != 0)
    value_error("act must have 4 * hidden_size columns, got shape " + act.shape_str());
  return {act.shape[0], act.shape[1] / 4};
}

py::tuple lstm_cell(py::handle gx_obj, py::handle gh_obj, py::handle cp_obj) {
  View gx = matrix(gx_obj, "gates_x"), gh;
  auto [N, H] = gates_arg(gx, gh_obj, gh, 4);
  View cp = matrix(cp_obj, "c_prev", N, H);
  py::array_t<float> h = new_f32({N, H}), c = new_f32({N, H}), act = new_f32({N, 4 * H});
  float *ph = h.mutable_data(), *pc = c.mutable_data(), *pa = act.mutable_data();
  {
    py::gil_scoped_release nogil;
    cpu::lstm_cell(gx.f(), gh.f(), cp.f(), ph, pc, pa, N, H);
  }
  return py::make_tuple(h, c, act);
}

py::tuple lstm_cell_backward(py::handle gh_obj, py::handle gc_obj, py::handle act_obj, py::handle cp_obj,
                             py::handle c_obj) {
  View act = matrix(act_obj, "act");
  auto [N, H] = act_arg(act);
  View gh = matrix(gh_obj, "grad_h", N, H);
  View gc;
  if (!gc_obj.is_none()) gc = matrix(gc_obj, "grad_c", N, H);
  View cp = matrix(cp_obj, "c_prev", N, H);
  View c = matrix(c_obj, "c", N, H);
  py::array_t<float> gg = new_f32({N, 4 * H}), gcp = new_f32({N, H});
  float *pgg = gg.mutable_data(), *pgcp = gcp.mutable_data();
  const float* pgc = gc.data ? gc.f() : nullptr;
  {
    py::gil_scoped_release nogil;
    cpu::lstm_cell_backward(gh.f(), pgc, act.f(), cp.f(), c.f(), pgg, pgcp, N, H);
  }
  return py::make_tuple(gg, gcp);
}

py::tuple gru_cell(py::handle gx_obj, py::handle gh_obj, py::handle hp_obj) {
  View gx = matrix(gx_obj, "gates_x"), gh;
  auto [N, H] = gates_arg(gx, gh_obj, gh, 3);
  View hp = matrix(hp_obj, "h_prev", N, H);
  py::array_t<float> h = new_f32({N, H}), act = new_f32({N, 4 * H});
  float *ph = h.mutable_data(), *pa = act.mutable_data();
  {
    py::gil_scoped_release nogil;
    cpu::gru_cell(gx.f(), gh.f(), hp.f(), ph, pa, N, H);
  }
  return py::make_tuple(h, act);
}

py::tuple gru_cell_backward(py::handle gh_obj, py::handle act_obj, py::handle hp_obj) {
  View act = matrix(act_obj, "act");
  auto [N, H] = act_arg(act);
  View g = matrix(gh_obj, "grad_h", N, H);
  View hp = matrix(hp_obj, "h_prev", N, H);
  py::array_t<float> gx = new_f32({N, 3 * H}), ggh = new_f32({N, 3 * H}), ghp = new_f32({N, H});
  float *pgx = gx.mutable_data(), *pgh = ggh.mutable_data(), *pghp = ghp.mutable_data();
  {
    py::gil_scoped_release nogil;
    cpu::gru_cell_backward(g.f(), act.f(), hp.f(), pgx, pgh, pghp, N, H);
  }
  return py::make_tuple(gx, ggh, ghp);
}

}  // namespace

LAMINA_BINDINGS(bind_rnn_cell) {
  m.def("lstm_cell", &lstm_cell, py::arg("gates_x"), py::arg("gates_h"), py::arg("c_prev"),
        "One LSTM step's gates (PyTorch's i, f, g, o): gates_x = x W_ih^T + b_ih and gates_h = h W_hh^T + b_hh "
        "(N, 4H), c_prev (N, H) -> (h, c (N, H), act (N, 4H) = [i, f, g, o]).");
  m.def("lstm_cell_backward", &lstm_cell_backward, py::arg("grad_h"), py::arg("grad_c"), py::arg("act"),
        py::arg("c_prev"), py::arg("c"),
        "(grad_gates (N, 4H), grad_c_prev (N, H)) of lstm_cell from grad_h, grad_c (N, H; None: zeros), its act, "
        "c_prev and c. grad_gates is the gradient of gates_x and of gates_h.");
  m.def("gru_cell", &gru_cell, py::arg("gates_x"), py::arg("gates_h"), py::arg("h_prev"),
        "One GRU step (PyTorch's r, z, n; the reset gate multiplies W_hn h + b_hn): gates_x, gates_h (N, 3H), "
        "h_prev (N, H) -> (h (N, H), act (N, 4H) = [r, z, n, W_hn h + b_hn]).");
  m.def("gru_cell_backward", &gru_cell_backward, py::arg("grad_h"), py::arg("act"), py::arg("h_prev"),
        "(grad_gates_x, grad_gates_h (N, 3H), grad_h_prev (N, H): the direct path z grad_h) of gru_cell.");
}

}  // namespace lamina::bind
