// bind_cuda_rnn_cell.cpp: lamina._cuda's lstm_cell, gru_cell and their backward passes
// (lamina/cuda/rnn_cell.h) with the reference's signatures and errors: float32 lamina.cuda
// 2-D arrays (strided ones copied), gate blocks of H columns, validated here (TypeError /
// ValueError naming the argument); the results are new arrays.
#include <string>
#include <utility>

#include "bind_cuda_array_arg.h"
#include "bind_cuda_common.h"
#include "lamina/cuda/rnn_cell.h"

namespace lamina::cuda::bind {

namespace {

// A (rows, cols) float32 array, C-contiguous; -1: any size along that axis.
DevArray matrix(py::handle obj, const char* name, index_t rows = -1, index_t cols = -1) {
  DevArray a = contig_arg(obj, name);
  if (a.shape.size() != 2)
    throw py::value_error(std::string(name) + " must be 2-D (N, columns), got shape " + shape_str(a.shape));
  if ((rows >= 0 && a.shape[0] != rows) || (cols >= 0 && a.shape[1] != cols))
    throw py::value_error(std::string(name) + " must have shape (" + std::to_string(rows) + ", " +
                          std::to_string(cols) + "), got " + shape_str(a.shape));
  return a;
}

// (N, H) of gates_x and gates_h (N, G H), both the same shape.
std::pair<index_t, index_t> gates(const DevArray& gx, py::handle gh_obj, DevArray& gh, int G) {
  if (gx.shape[1] % G != 0)
    throw py::value_error("gates_x must have " + std::to_string(G) + " * hidden_size columns, got shape " +
                          shape_str(gx.shape));
  gh = matrix(gh_obj, "gates_h", gx.shape[0], gx.shape[1]);
  return {gx.shape[0], gx.shape[1] / G};
}

// (N, H) of act (N, 4H).
std::pair<index_t, index_t> act_shape(const DevArray& act) {
  if (act.shape[1] % 4 != 0)
    throw py::value_error("act must have 4 * hidden_size columns, got shape " + shape_str(act.shape));
  return {act.shape[0], act.shape[1] / 4};
}

py::tuple lstm_cell(py::handle gx_obj, py::handle gh_obj, py::handle cp_obj) {
  const DevArray gx = matrix(gx_obj, "gates_x");
  DevArray gh;
  const auto [N, H] = gates(gx, gh_obj, gh, 4);
  const DevArray cp = matrix(cp_obj, "c_prev", N, H);
  const DevArray h = new_array({N, H}), c = new_array({N, H}), act = new_array({N, 4 * H});
  {
    DeviceGuard guard;
    lamina::cuda::lstm_cell(gx.f(), gh.f(), cp.f(), h.f(), c.f(), act.f(), N, H);
  }
  return py::make_tuple(h.obj, c.obj, act.obj);
}

py::tuple lstm_cell_backward(py::handle gh_obj, py::handle gc_obj, py::handle act_obj, py::handle cp_obj,
                             py::handle c_obj) {
  const DevArray act = matrix(act_obj, "act");
  const auto [N, H] = act_shape(act);
  const DevArray gh = matrix(gh_obj, "grad_h", N, H);
  const DevArray gc = gc_obj.is_none() ? DevArray{} : matrix(gc_obj, "grad_c", N, H);
  const DevArray cp = matrix(cp_obj, "c_prev", N, H);
  const DevArray c = matrix(c_obj, "c", N, H);
  const DevArray gg = new_array({N, 4 * H}), gcp = new_array({N, H});
  {
    DeviceGuard guard;
    lamina::cuda::lstm_cell_backward(gh.f(), gc.ptr ? gc.f() : nullptr, act.f(), cp.f(), c.f(), gg.f(), gcp.f(), N,
                                     H);
  }
  return py::make_tuple(gg.obj, gcp.obj);
}

py::tuple gru_cell(py::handle gx_obj, py::handle gh_obj, py::handle hp_obj) {
  const DevArray gx = matrix(gx_obj, "gates_x");
  DevArray gh;
  const auto [N, H] = gates(gx, gh_obj, gh, 3);
  const DevArray hp = matrix(hp_obj, "h_prev", N, H);
  const DevArray h = new_array({N, H}), act = new_array({N, 4 * H});
  {
    DeviceGuard guard;
    lamina::cuda::gru_cell(gx.f(), gh.f(), hp.f(), h.f(), act.f(), N, H);
  }
  return py::make_tuple(h.obj, act.obj);
}

py::tuple gru_cell_backward(py::handle gh_obj, py::handle act_obj, py::handle hp_obj) {
  const DevArray act = matrix(act_obj, "act");
  const auto [N, H] = act_shape(act);
  const DevArray g = matrix(gh_obj, "grad_h", N, H);
  const DevArray hp = matrix(hp_obj, "h_prev", N, H);
  const DevArray gx = new_array({N, 3 * H}), ggh = new_array({N, 3 * H}), ghp = new_array({N, H});
  {
    DeviceGuard guard;
    lamina::cuda::gru_cell_backward(g.f(), act.f(), hp.f(), gx.f(), ggh.f(), ghp.f(), N, H);
  }
  return py::make_tuple(gx.obj, ggh.obj, ghp.obj);
}

}  // namespace

void bind_rnn_cell(py::module_& m) {
  m.def("lstm_cell", &lstm_cell, py::arg("gates_x"), py::arg("gates_h"), py::arg("c_prev"),
        "One LSTM step's gates (i, f, g, o) -> (h, c, act): lamina.reference.lstm_cell on the device.");
  m.def("lstm_cell_backward", &lstm_cell_backward, py::arg("grad_h"), py::arg("grad_c"), py::arg("act"),
        py::arg("c_prev"), py::arg("c"),
        "(grad_gates, grad_c_prev) of lstm_cell (grad_c None: zeros): lamina.reference.lstm_cell_backward.");
  m.def("gru_cell", &gru_cell, py::arg("gates_x"), py::arg("gates_h"), py::arg("h_prev"),
        "One GRU step's gates (r, z, n) -> (h, act): lamina.reference.gru_cell on the device.");
  m.def("gru_cell_backward", &gru_cell_backward, py::arg("grad_h"), py::arg("act"), py::arg("h_prev"),
        "(grad_gates_x, grad_gates_h, grad_h_prev) of gru_cell: lamina.reference.gru_cell_backward.");
}

}  // namespace lamina::cuda::bind
