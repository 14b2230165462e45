// bind_cuda_array.cpp: lamina._cuda's fill, copy, transpose, add, scale, gather_rows, argmax,
// all_finite and dot (lamina/cuda/array.h) with the reference's signatures, on lamina.cuda arrays
// validated here. fill, copy and transpose take any of the runtime's dtypes and any strides (out
// of copy / transpose too); gather_rows any dtype for x; the others float32 (strided inputs copied).
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "bind_cuda_array_arg.h"
#include "bind_cuda_common.h"
#include "lamina/cuda/array.h"

namespace lamina::cuda::bind {

namespace {

// value converted to x's dtype, as NumPy's astype converts it, as raw bits.
std::uint64_t fill_bits(py::handle value, const DevArray& x) {
  std::uint64_t bits = 0;
  if (x.dtype == "float32") {
    const float f = static_cast<float>(real_arg(value));
    std::memcpy(&bits, &f, sizeof f);
  } else if (x.dtype == "float64") {
    const double d = real_arg(value);
    std::memcpy(&bits, &d, sizeof d);
  } else {
    const long long v = PyFloat_Check(value.ptr()) ? static_cast<long long>(real_arg(value)) : index_arg(value);
    if (x.itemsize == 4) bits = static_cast<std::uint32_t>(static_cast<std::int32_t>(v));
    else bits = static_cast<std::uint64_t>(v);
  }
  return bits;
}

// x (any strides) into out (any strides; through a temporary where it partly overlaps x), or
// into a new C-contiguous array.
py::object copy_to(const DevArray& x, py::handle out_obj) {
  if (out_obj.is_none()) {
    DevArray y = new_array(x.shape, x.dtype.c_str());
    copy_into(x, y);
    return y.obj;
  }
  const DevArray out = array_arg(out_obj, "out", nullptr);
  if (out.dtype != x.dtype) throw py::type_error("out must have dtype " + x.dtype + ", got " + out.dtype);
  if (out.shape != x.shape)
    throw py::value_error("out has shape " + shape_str(out.shape) + ", expected " + shape_str(x.shape));
  if (out.ptr == x.ptr && out.strides == x.strides) return out.obj;
  if (overlaps(out, x)) {
    DevArray tmp = new_array(x.shape, x.dtype.c_str());
    copy_into(x, tmp);
    copy_into(tmp, out);
  } else {
    copy_into(x, out);
  }
  return out.obj;
}

std::vector<int> axes_arg(py::handle axes, std::size_t ndim) {
  std::vector<int> perm;
  std::vector<bool> seen(ndim, false);
  bool ok = true;
  try {
    for (py::handle a : py::iter(axes)) {
      const long long v = index_arg(a);
      ok = ok && v >= 0 && v < static_cast<long long>(ndim) && !seen[static_cast<std::size_t>(v)];
      if (ok) seen[static_cast<std::size_t>(v)] = true;
      perm.push_back(static_cast<int>(v));
    }
  } catch (py::error_already_set& e) {
    if (!e.matches(PyExc_TypeError)) throw;
    throw py::type_error("axes must be a sequence of ints, got " + std::string(py::repr(axes)));
  }
  if (!ok || perm.size() != ndim)
    throw py::value_error("axes " + std::string(py::repr(axes)) + " is not a permutation of range(" +
                          std::to_string(ndim) + ")");
  return perm;
}

py::object fill_(py::handle x_obj, py::handle value) {
  const DevArray x = array_arg(x_obj, "x", nullptr);
  const std::uint64_t bits = fill_bits(value, x);
  if (x.size()) {
    DeviceGuard guard;
    fill(reinterpret_cast<void*>(x.ptr), bits, x.itemsize, static_cast<int>(x.shape.size()), x.shape.data(),
         x.strides.data());
  }
  return x.obj;
}

py::object transpose_(py::handle x_obj, py::handle axes, py::handle out_obj) {
  DevArray x = array_arg(x_obj, "x", nullptr);
  const std::vector<int> perm = axes_arg(axes, x.shape.size());
  DevArray view = x;
  for (std::size_t d = 0; d < perm.size(); ++d) {
    view.shape[d] = x.shape[perm[d]];
    view.strides[d] = x.strides[perm[d]];
  }
  return copy_to(view, out_obj);
}

py::object add_(py::handle a_obj, py::handle b_obj, py::handle alpha, py::handle out_obj) {
  const DevArray a = contig_arg(a_obj, "a"), b = contig_arg(b_obj, "b");
  same_shape(b, "b", a, "a");
  const float al = static_cast<float>(real_arg(alpha));
  DevOutput out(out_obj, a.shape, {&a, &b}, /*elementwise=*/true);
  {
    DeviceGuard guard;
    add(a.f(), b.f(), out.data(), a.size(), al);
  }
  return out.result();
}

py::object scale_(py::handle x_obj, py::handle alpha, py::handle out_obj) {
  const DevArray x = contig_arg(x_obj, "x");
  const float al = static_cast<float>(real_arg(alpha));
  DevOutput out(out_obj, x.shape, {&x}, /*elementwise=*/true);
  {
    DeviceGuard guard;
    scale(x.f(), out.data(), x.size(), al);
  }
  return out.result();
}

py::object gather_rows_(py::handle x_obj, py::handle idx_obj, py::handle out_obj) {
  DevArray x = array_arg(x_obj, "x", nullptr);
  py::object host_idx;
  if (py::isinstance(idx_obj, py::module_::import("numpy").attr("ndarray"))) {
    const std::string dt = py::str(idx_obj.attr("dtype"));
    if (dt != "int64" && dt != "int32") throw py::type_error("indices must be int64 or int32, got " + dt);
    host_idx = from_host(idx_obj).obj;
    idx_obj = host_idx;
  }
  DevArray idx = array_arg_of(idx_obj, "indices", {"int64", "int32"}, "indices must be an array of int64 or int32, got ");
  if (idx.shape.size() != 1) throw py::value_error("indices must be 1-D, got shape " + shape_str(idx.shape));
  if (x.shape.empty()) throw py::value_error("x must have at least 1 dimension");
  x = contig_arg(x.obj, "x", nullptr);
  idx = contig_arg(idx.obj, "indices", nullptr);
  const index_t M = idx.shape[0], R = x.shape[0];
  std::vector<index_t> shape = x.shape;
  shape[0] = M;
  DevOutput out(out_obj, shape, {&x, &idx}, /*elementwise=*/false, x.dtype);
  index_t row = 1;
  for (std::size_t d = 1; d < x.shape.size(); ++d) row *= x.shape[d];
  if (M && row) {
    index_t bad;
    {
      DeviceGuard guard;
      bad = gather_rows(reinterpret_cast<const void*>(x.ptr), R, row, x.itemsize,
                        reinterpret_cast<const void*>(idx.ptr), idx.itemsize == 8, M, out.raw());
    }
    if (bad >= 0)
      throw py::value_error("indices[" + std::to_string(bad) + "] = " + std::to_string(read_int(idx, bad)) +
                            " is out of range [0, " + std::to_string(R) + ") for x of shape " + shape_str(x.shape));
  } else if (M && R == 0) {
    throw py::value_error("indices[0] is out of range [0, 0) for x of shape " + shape_str(x.shape));
  }
  return out.result();
}

py::object argmax_(py::handle x_obj, py::handle axis) {
  const DevArray x = contig_arg(x_obj, "x");
  if (x.shape.empty()) throw py::value_error("x must have at least 1 dimension");
  index_t outer, K, inner;
  int ax;
  rows_around(x.shape, axis, outer, K, inner, &ax);
  if (K == 0)
    throw py::value_error("argmax of an empty axis (x has shape " + shape_str(x.shape) + ", axis " +
                          std::string(py::str(axis)) + ")");
  std::vector<index_t> shape = x.shape;
  shape.erase(shape.begin() + ax);
  const DevArray y = new_array(shape, "int64");
  if (y.size()) {
    DeviceGuard guard;
    argmax(x.f(), reinterpret_cast<std::int64_t*>(y.ptr), outer, K, inner);
  }
  return y.obj;
}

bool all_finite_(py::handle x_obj) {
  const DevArray x = contig_arg(x_obj, "x");
  DeviceGuard guard;
  return all_finite(x.f(), x.size());
}

double dot_(py::handle a_obj, py::handle b_obj) {
  const DevArray a = contig_arg(a_obj, "a"), b = contig_arg(b_obj, "b");
  same_shape(b, "b", a, "a");
  DeviceGuard guard;
  return dot(a.f(), b.f(), a.size());
}

}  // namespace

void bind_array(py::module_& m) {
  const py::arg_v out = py::arg("out") = py::none();
  m.def("fill", &fill_, py::arg("x"), py::arg("value"));
  m.def("copy", [](py::handle x, py::handle o) { return copy_to(array_arg(x, "x", nullptr), o); }, py::arg("x"), out);
  m.def("transpose", &transpose_, py::arg("x"), py::arg("axes"), out);
  m.def("add", &add_, py::arg("a"), py::arg("b"), py::arg("alpha") = 1.0, out);
  m.def("scale", &scale_, py::arg("x"), py::arg("alpha"), out);
  m.def("gather_rows", &gather_rows_, py::arg("x"), py::arg("indices"), out);
  m.def("argmax", &argmax_, py::arg("x"), py::arg("axis") = -1);
  m.def("all_finite", &all_finite_, py::arg("x"));
  m.def("dot", &dot_, py::arg("a"), py::arg("b"));
}

}  // namespace lamina::cuda::bind
