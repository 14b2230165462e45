// bind_gemm.cpp: matmul and linear. Any strides (negative included) are read in place;
// `out` must be a C-contiguous float32 array of the result's shape.
#include "bind_common.h"
#include "lamina/checked.h"
#include "lamina/gemm.h"

namespace lamina::bind {
namespace {

struct Mat {
  index_t rows, cols;
  MatRef ref;
};

// op(X) for a 2-D view: transposing swaps the strides, nothing is copied.
Mat as_mat(const View& v, bool trans) {
  Mat m{v.shape[0], v.shape[1], MatRef{v.f(), v.strides[0], v.strides[1]}};
  if (trans) {
    std::swap(m.rows, m.cols);
    std::swap(m.ref.rs, m.ref.cs);
  }
  return m;
}

// Runs C = op(A) op(B) (+ epilogue) into `out` or a new array (bind_common.h: Output).
py::array run_gemm(const Mat& a, const Mat& b, py::handle out_obj, GemmEpilogue ep,
                   const std::vector<const View*>& inputs) {
  const index_t M = a.rows, N = b.cols, K = a.cols;
  // (M, N) from two arrays of (M, 0) and (0, N) need not be allocatable (checked.h).
  checked_nbytes({M, N}, sizeof(float), "the result (op(a) rows x op(b) columns)");
  Output out(out_obj, {M, N}, inputs);
  {
    py::gil_scoped_release nogil;
    cpu::sgemm(M, N, K, a.ref, b.ref, out.data(), N, ep);
    out.finish();
  }
  return out.result();
}

py::array matmul(py::handle a_obj, py::handle b_obj, bool trans_a, bool trans_b, py::handle out_obj) {
  View av = f32_arg(a_obj, "a", 2), bv = f32_arg(b_obj, "b", 2);
  Mat a = as_mat(av, trans_a), b = as_mat(bv, trans_b);
  if (a.cols != b.rows)
    value_error("matmul: inner dimensions differ: op(a) is " + shape_str({a.rows, a.cols}) +
                " and op(b) is " + shape_str({b.rows, b.cols}) + " (a has shape " + av.shape_str() +
                ", b has shape " + bv.shape_str() + ")");
  return run_gemm(a, b, out_obj, GemmEpilogue{}, {&av, &bv});
}

py::array linear(py::handle x_obj, py::handle w_obj, py::handle b_obj, py::handle act, py::handle out_obj) {
  View xv = f32_arg(x_obj, "x", 2), wv = f32_arg(w_obj, "w", 2);
  if (wv.shape[1] != xv.shape[1])
    value_error("linear: w has shape " + wv.shape_str() + " (out_features, in_features) but x has " +
                std::to_string(xv.shape[1]) + " features (x shape " + xv.shape_str() + ")");
  GemmEpilogue ep;
  View bv;
  std::vector<const View*> inputs{&xv, &wv};
  if (!b_obj.is_none()) {
    bv = f32_contig_arg(b_obj, "b", 1);
    if (bv.shape[0] != wv.shape[0])
      value_error("linear: b has shape " + bv.shape_str() + ", expected (" + std::to_string(wv.shape[0]) + ",)");
    ep.bias = bv.f();
    ep.bias_mode = Bias::per_col;
    inputs.push_back(&bv);
  }
  ep.relu = relu_activation(act);
  return run_gemm(as_mat(xv, false), as_mat(wv, true), out_obj, ep, inputs);
}

}  // namespace

LAMINA_BINDINGS(bind_gemm) {
  m.def("matmul", &matmul, py::arg("a"), py::arg("b"), py::arg("trans_a") = false,
        py::arg("trans_b") = false, py::arg("out") = py::none(),
        "op(a) @ op(b) for 2-D float32 arrays, op = transpose when trans_a / trans_b.");
  m.def("linear", &linear, py::arg("x"), py::arg("w"), py::arg("b") = py::none(),
        py::arg("activation") = py::none(), py::arg("out") = py::none(),
        "x @ w.T + b with w of shape (out_features, in_features); activation None or 'relu' "
        "is applied in the GEMM's write-back.");
}

}  // namespace lamina::bind
