// bind_cuda_gemm.cpp: lamina._cuda's matmul and linear (lamina/cuda/gemm.h) with the reference's
// signatures, on float32 2-D lamina.cuda arrays validated here: a view whose rows are contiguous
// is read in place through its leading dimension, any other layout copied; the result to a new
// array or to `out` (through a temporary where it overlaps an operand). Each call follows
// lamina.cuda.allow_tf32.
#include <algorithm>
#include <string>
#include <vector>

#include "bind_cuda_array_arg.h"
#include "bind_cuda_common.h"
#include "lamina/cuda/gemm.h"

namespace lamina::cuda::bind {

namespace {

// A 2-D float32 operand and its leading dimension (elements between rows).
struct Matrix {
  DevArray a;
  index_t ld;
};

Matrix matrix_arg(py::handle obj, const char* name) {
  DevArray a = array_arg(obj, name);
  if (a.shape.size() != 2)
    throw py::value_error(std::string(name) + " must be 2-D, got shape " + shape_str(a.shape));
  const index_t cols = std::max<index_t>(a.shape[1], 1);
  if (a.strides[1] == 1 && a.strides[0] >= cols) return {a, a.strides[0]};
  if (!a.contiguous()) a = contig_arg(obj, name);
  return {a, cols};
}

// lamina.cuda.allow_tf32 into the GEMMs' flag when it has changed since the last call (the module's
// set_allow_tf32 holds until then).
void sync_tf32() {
  static int seen = -1;  // under the GIL
  const int now = truth(py::module_::import("lamina.cuda").attr("allow_tf32"));
  if (now != seen) allow_tf32() = (seen = now) != 0;
}

py::object matmul_(py::handle a_obj, py::handle b_obj, py::handle trans_a, py::handle trans_b, py::handle out_obj) {
  const Matrix a = matrix_arg(a_obj, "a"), b = matrix_arg(b_obj, "b");
  const bool ta = truth(trans_a), tb = truth(trans_b);
  const index_t M = ta ? a.a.shape[1] : a.a.shape[0], K = ta ? a.a.shape[0] : a.a.shape[1];
  const index_t K2 = tb ? b.a.shape[1] : b.a.shape[0], N = tb ? b.a.shape[0] : b.a.shape[1];
  if (K != K2)
    throw py::value_error("matmul: op(a) is (" + std::to_string(M) + ", " + std::to_string(K) + ") but op(b) is (" +
                          std::to_string(K2) + ", " + std::to_string(N) + "): inner dimensions differ");
  DevOutput out(out_obj, {M, N}, {&a.a, &b.a});
  sync_tf32();
  {
    DeviceGuard guard;
    matmul(a.a.f(), a.ld, ta, b.a.f(), b.ld, tb, out.data(), M, N, K);
  }
  return out.result();
}

py::object linear_(py::handle x_obj, py::handle w_obj, py::handle b_obj, py::handle activation, py::handle out_obj) {
  const bool relu = relu_activation(activation);
  const Matrix x = matrix_arg(x_obj, "x"), w = matrix_arg(w_obj, "w");
  const index_t n = x.a.shape[0], k = x.a.shape[1], o = w.a.shape[0], k2 = w.a.shape[1];
  if (k != k2)
    throw py::value_error("x has " + std::to_string(k) + " features but w has " + std::to_string(k2) + " (x " +
                          shape_str(x.a.shape) + ", w " + shape_str(w.a.shape) + ")");
  std::vector<const DevArray*> inputs{&x.a, &w.a};
  DevArray b;
  if (!b_obj.is_none()) {
    b = contig_arg(b_obj, "b");
    if (b.shape != std::vector<index_t>{o})
      throw py::value_error("b must have shape (" + std::to_string(o) + ",), got " + shape_str(b.shape));
    inputs.push_back(&b);
  }
  DevOutput out(out_obj, {n, o}, inputs);
  sync_tf32();
  {
    DeviceGuard guard;
    linear(x.a.f(), x.ld, w.a.f(), w.ld, b_obj.is_none() ? nullptr : b.f(), relu, out.data(), n, o, k);
  }
  return out.result();
}

}  // namespace

void bind_gemm(py::module_& m) {
  const py::arg_v out = py::arg("out") = py::none();
  m.def("matmul", &matmul_, py::arg("a"), py::arg("b"), py::arg("trans_a") = false, py::arg("trans_b") = false, out);
  m.def("linear", &linear_, py::arg("x"), py::arg("w"), py::arg("b") = py::none(), py::arg("activation") = py::none(),
        out);
}

}  // namespace lamina::cuda::bind
