// bind_array.cpp: fill, copy, transpose, add, scale, gather_rows, argmax, all_finite, dot.
// copy / transpose take any strides on both sides and any of float32 / int32 / int64;
// gather_rows any of those for x; the others are float32, C-contiguous. Results go to a new
// array or to `out`; where `out` partly overlaps an input the result goes through a temporary.
#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "bind_eltwise.h"
#include "lamina/array.h"
#include "lamina/checked.h"

namespace lamina::bind {
namespace {

std::string type_name(py::handle h) { return std::string(py::str(py::type::of(h).attr("__name__"))); }

const std::vector<py::dtype>& copy_dtypes() {
  static const std::vector<py::dtype> d{py::dtype::of<float>(), py::dtype::of<std::int32_t>(),
                                        py::dtype::of<std::int64_t>()};
  return d;
}

std::vector<py::ssize_t> ssize_shape(const std::vector<index_t>& shape) {
  return std::vector<py::ssize_t>(shape.begin(), shape.end());
}

std::vector<index_t> c_strides(const std::vector<index_t>& shape) {
  std::vector<index_t> st(shape.size());
  index_t s = 1;
  for (std::size_t d = shape.size(); d-- > 0;) {
    st[d] = s;
    s *= shape[d];
  }
  return st;
}

// out for copy / transpose / gather_rows: x's dtype (TypeError), `shape` (ValueError),
// writeable; `contig` also demands C-contiguity.
View typed_out(py::handle out_obj, const View& like, const std::vector<index_t>& shape, bool contig) {
  View out = typed_arg(out_obj, "out", copy_dtypes(), -1, true);
  if (!out.arr.dtype().equal(like.arr.dtype()))
    type_error("out must have the dtype of x (" + std::string(py::str(like.arr.dtype())) + "), got " +
               std::string(py::str(out.arr.dtype())));
  if (out.shape != shape) value_error("out has shape " + out.shape_str() + ", expected " + shape_str(shape));
  if (contig && out.size() > 0 && !out.c_contiguous())
    value_error("out must be C-contiguous; pass a C-contiguous array (or out=None)");
  return out;
}

// x permuted by `perm` into out (or a new C-contiguous array): the one strided copy.
py::array copy_permuted(py::handle x_obj, const std::vector<int>& perm, py::handle out_obj) {
  View x = typed_arg(x_obj, "x", copy_dtypes());
  std::vector<index_t> shape, src;
  for (int a : perm) {
    shape.push_back(x.shape[a]);
    src.push_back(x.strides[a]);
  }
  const int item = static_cast<int>(x.arr.itemsize());
  const int nd = static_cast<int>(shape.size());
  py::array fresh = no_array();
  View out;
  char* dst = nullptr;
  std::vector<index_t> dst_st = c_strides(shape);
  bool via_tmp = false;
  if (!out_obj.is_none()) {
    out = typed_out(out_obj, x, shape, false);
    via_tmp = overlaps(out, x);
  }
  if (out_obj.is_none() || via_tmp) {
    fresh = py::array(x.arr.dtype(), ssize_shape(shape));
    dst = static_cast<char*>(fresh.mutable_data());
  } else {
    dst = out.data;
    dst_st = out.strides;
  }
  {
    py::gil_scoped_release nogil;
    cpu::copy(x.data, dst, item, nd, shape.data(), src.data(), dst_st.data());
    if (via_tmp) {
      const std::vector<index_t> tmp_st = c_strides(shape);
      cpu::copy(dst, out.data, item, nd, shape.data(), tmp_st.data(), out.strides.data());
    }
  }
  if (!out_obj.is_none()) return py::reinterpret_borrow<py::array>(out_obj);
  return fresh;
}

std::vector<int> axes_arg(py::handle axes_obj, int ndim) {
  if (!py::isinstance<py::sequence>(axes_obj) || py::isinstance<py::str>(axes_obj))
    type_error("axes must be a sequence of ints (a permutation of range(ndim)), got " + type_name(axes_obj));
  py::sequence s = py::reinterpret_borrow<py::sequence>(axes_obj);
  std::vector<int> perm;
  std::vector<bool> seen(static_cast<std::size_t>(ndim), false);
  bool ok = static_cast<int>(s.size()) == ndim;
  for (std::size_t i = 0; ok && i < s.size(); ++i) {
    const long long a = int64_arg(s[i], "axes");
    ok = a >= 0 && a < ndim && !seen[static_cast<std::size_t>(a)];
    if (ok) {
      seen[static_cast<std::size_t>(a)] = true;
      perm.push_back(static_cast<int>(a));
    }
  }
  if (!ok)
    value_error("axes " + std::string(py::repr(axes_obj)) + " is not a permutation of range(" +
                std::to_string(ndim) + ")");
  return perm;
}

View same_shape(py::handle b_obj, const char* b_name, const View& a, const char* a_name) {
  View b = contig_arg(b_obj, b_name);
  if (b.shape != a.shape)
    value_error(std::string(b_name) + " has shape " + b.shape_str() + " but " + a_name + " has shape " +
                a.shape_str() + "; they must match (no broadcasting)");
  return b;
}

py::array fill(py::handle x_obj, py::handle value_obj) {
  View x = contig_arg(x_obj, "x", -1, true);
  const float value = static_cast<float>(real_arg(value_obj, "value"));
  {
    py::gil_scoped_release nogil;
    cpu::fill(x.f(), x.size(), value);
  }
  return py::reinterpret_borrow<py::array>(x_obj);
}

py::array add(py::handle a_obj, py::handle b_obj, py::handle alpha_obj, py::handle out_obj) {
  View a = contig_arg(a_obj, "a");
  View b = same_shape(b_obj, "b", a, "a");
  const float alpha = static_cast<float>(real_arg(alpha_obj, "alpha"));
  Output out(out_obj, a.shape, {&a, &b}, /*elementwise=*/true);
  {
    py::gil_scoped_release nogil;
    cpu::add(a.f(), b.f(), out.data(), a.size(), alpha);
    out.finish();
  }
  return out.result();
}

py::array scale(py::handle x_obj, py::handle alpha_obj, py::handle out_obj) {
  View x = contig_arg(x_obj, "x");
  const float alpha = static_cast<float>(real_arg(alpha_obj, "alpha"));
  Output out(out_obj, x.shape, {&x}, /*elementwise=*/true);
  {
    py::gil_scoped_release nogil;
    cpu::scale(x.f(), out.data(), x.size(), alpha);
    out.finish();
  }
  return out.result();
}

py::array gather_rows(py::handle x_obj, py::handle idx_obj, py::handle out_obj) {
  View x = typed_arg(x_obj, "x", copy_dtypes());
  if (x.ndim < 1) value_error("x must have at least 1 dimension (rows along axis 0), got a 0-D array");
  if (x.size() > 0 && !x.c_contiguous())
    value_error("x must be C-contiguous; pass np.ascontiguousarray(x)");
  View idx = typed_arg(idx_obj, "indices", {py::dtype::of<std::int64_t>(), py::dtype::of<std::int32_t>()}, 1);
  const bool i64 = idx.arr.itemsize() == 8;
  py::array idx_c = idx.arr;
  if (idx.size() > 1 && idx.strides[0] != 1)  // a strided 1-D view: gathered into a contiguous copy
    idx_c = i64 ? py::array(py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>(idx.arr))
                : py::array(py::array_t<std::int32_t, py::array::c_style | py::array::forcecast>(idx.arr));
  const index_t m = idx.shape[0], rows = x.shape[0];
  std::vector<index_t> shape = x.shape;
  shape[0] = m;
  index_t row_elems = 1;
  for (int d = 1; d < x.ndim; ++d) row_elems *= x.shape[d];
  const index_t row_bytes = row_elems * static_cast<index_t>(x.arr.itemsize());
  // (len(indices),) + x.shape[1:] must be allocatable: x may be (0, 2**60) with 8 indices.
  checked_nbytes(shape, static_cast<index_t>(x.arr.itemsize()), "indices (the output's length)");

  py::array fresh = no_array();
  View out;
  char* dst = nullptr;
  bool via_tmp = false;
  if (!out_obj.is_none()) {
    out = typed_out(out_obj, x, shape, true);
    via_tmp = overlaps(out, x) || overlaps(out, idx);
    dst = out.data;
  }
  if (out_obj.is_none() || via_tmp) {
    fresh = py::array(x.arr.dtype(), ssize_shape(shape));
    dst = static_cast<char*>(fresh.mutable_data());
  }
  const void* ip = idx_c.data();
  index_t bad;
  {
    py::gil_scoped_release nogil;
    bad = cpu::gather_rows(x.data, rows, row_bytes, ip, i64, m, dst);
    if (bad < 0 && via_tmp) std::copy(dst, dst + m * row_bytes, out.data);
  }
  if (bad >= 0) {
    const long long v = i64 ? static_cast<const std::int64_t*>(ip)[bad] : static_cast<const std::int32_t*>(ip)[bad];
    value_error("indices[" + std::to_string(bad) + "] = " + std::to_string(v) + " is out of range [0, " +
                std::to_string(rows) + ") for x of shape " + x.shape_str());
  }
  if (!out_obj.is_none()) return py::reinterpret_borrow<py::array>(out_obj);
  return fresh;
}

py::array argmax(py::handle x_obj, py::handle axis_obj) {
  View x = contig_arg(x_obj, "x");
  if (x.ndim == 0) value_error("x must have at least 1 dimension to take an argmax along axis");
  const long long ax = int64_arg(axis_obj, "axis");
  if (ax < -x.ndim || ax >= x.ndim)
    value_error("axis " + std::to_string(ax) + " is out of range for x with " + std::to_string(x.ndim) +
                " dimensions (shape " + x.shape_str() + ")");
  const int axis = static_cast<int>(ax < 0 ? ax + x.ndim : ax);
  const index_t K = x.shape[axis];
  if (K == 0)
    value_error("argmax of an empty axis: x has shape " + x.shape_str() + " and axis " + std::to_string(ax) +
                " has length 0");
  index_t outer = 1, inner = 1;
  std::vector<py::ssize_t> oshape;
  for (int d = 0; d < x.ndim; ++d) {
    if (d < axis) outer *= x.shape[d];
    if (d > axis) inner *= x.shape[d];
    if (d != axis) oshape.push_back(x.shape[d]);
  }
  py::array_t<std::int64_t> out(oshape);
  std::int64_t* op = out.mutable_data();
  {
    py::gil_scoped_release nogil;
    cpu::argmax(x.f(), op, outer, K, inner);
  }
  return std::move(out);
}

bool all_finite(py::handle x_obj) {
  View x = contig_arg(x_obj, "x");
  py::gil_scoped_release nogil;
  return cpu::all_finite(x.f(), x.size());
}

double dot(py::handle a_obj, py::handle b_obj) {
  View a = contig_arg(a_obj, "a");
  View b = same_shape(b_obj, "b", a, "a");
  py::gil_scoped_release nogil;
  return cpu::dot(a.f(), b.f(), a.size());
}

}  // namespace

LAMINA_BINDINGS(bind_array) {
  const py::arg_v out = py::arg("out") = py::none();
  m.def("fill", &fill, py::arg("x"), py::arg("value"),
        "x[...] = value in place (x float32, C-contiguous, writeable); returns x.");
  m.def(
      "copy", [](py::handle x, py::handle o) {
        if (!py::isinstance<py::array>(x)) typed_arg(x, "x", copy_dtypes());
        const int nd = static_cast<int>(py::reinterpret_borrow<py::array>(x).ndim());
        std::vector<int> perm(static_cast<std::size_t>(nd));
        for (int i = 0; i < nd; ++i) perm[static_cast<std::size_t>(i)] = i;
        return copy_permuted(x, perm, o);
      },
      py::arg("x"), out,
      "A C-contiguous copy of x, or x written into out (same shape and dtype). x and out may have "
      "any strides (out=W[:, :F] writes a column block); float32, int32 or int64. Overlapping x "
      "and out go through a temporary.");
  m.def(
      "transpose", [](py::handle x, py::handle axes, py::handle o) {
        if (!py::isinstance<py::array>(x)) typed_arg(x, "x", copy_dtypes());
        const int nd = static_cast<int>(py::reinterpret_borrow<py::array>(x).ndim());
        return copy_permuted(x, axes_arg(axes, nd), o);
      },
      py::arg("x"), py::arg("axes"), out,
      "x.transpose(axes) materialised: a new C-contiguous array, or written into out (any strides, "
      "as for copy). axes: a permutation of range(x.ndim).");
  m.def("add", &add, py::arg("a"), py::arg("b"), py::arg("alpha") = 1.0, out,
        "a + alpha * b element-wise (float32, same shapes, no broadcasting, one fused multiply-add); "
        "out may be a or b (add(g, d, out=g) accumulates in place).");
  m.def("scale", &scale, py::arg("x"), py::arg("alpha"), out, "alpha * x element-wise; out may be x.");
  m.def("gather_rows", &gather_rows, py::arg("x"), py::arg("indices"), out,
        "out[i] = x[indices[i]] along axis 0. x C-contiguous float32, int32 or int64; indices 1-D "
        "int64 or int32 in [0, len(x)) (anything else is a ValueError naming the index); out "
        "C-contiguous of shape (len(indices),) + x.shape[1:] and x's dtype.");
  m.def("argmax", &argmax, py::arg("x"), py::arg("axis") = -1,
        "int64 index of the first maximum along axis (x float32, C-contiguous, ndim >= 1); a NaN "
        "counts as the maximum (the first NaN wins, as np.argmax). Shape: x.shape without axis.");
  m.def("all_finite", &all_finite, py::arg("x"),
        "True when x (float32, C-contiguous) holds no NaN or inf (True for an empty x).");
  m.def("dot", &dot, py::arg("a"), py::arg("b"),
        "sum(a * b) over all elements as a Python float, products and sum in float64 (the same "
        "value for any thread count). a, b float32, same shape, C-contiguous.");
}

}  // namespace lamina::bind
