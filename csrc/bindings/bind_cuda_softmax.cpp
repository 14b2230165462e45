// bind_cuda_softmax.cpp: lamina._cuda's softmax, log_softmax, softmax_backward and
// softmax_cross_entropy (lamina/cuda/softmax.h) with the reference's signatures, on float32
// lamina.cuda arrays validated here (strided ones copied); an array is (outer, K, inner) around
// the axis. A row is read in full before it is written, so `out` may be the input itself.
// softmax_cross_entropy takes labels on the device (int32 / int64) or on the host (any integers,
// copied over as int64) and returns (mean loss, grad_logits).
#include <cmath>
#include <limits>

#include "bind_cuda_array_arg.h"
#include "bind_cuda_common.h"
#include "lamina/cuda/softmax.h"

namespace lamina::cuda::bind {

namespace {

template <class Kernel>
py::object row_wise(py::handle x_obj, py::handle axis, py::handle out_obj, Kernel kernel) {
  const DevArray x = contig_arg(x_obj, "x");
  index_t outer, K, inner;
  rows_around(x.shape, axis, outer, K, inner);
  DevOutput out(out_obj, x.shape, {&x}, /*elementwise=*/true);
  if (x.size()) {
    DeviceGuard guard;
    kernel(x.f(), out.data(), outer, K, inner);
  }
  return out.result();
}

py::object softmax_backward_(py::handle gy_obj, py::handle y_obj, py::handle axis, py::handle out_obj) {
  const DevArray gy = contig_arg(gy_obj, "grad_y"), y = contig_arg(y_obj, "y");
  same_shape(gy, "grad_y", y, "y");
  index_t outer, K, inner;
  rows_around(y.shape, axis, outer, K, inner);
  DevOutput out(out_obj, y.shape, {&gy, &y}, /*elementwise=*/true);
  if (y.size()) {
    DeviceGuard guard;
    softmax_backward(gy.f(), y.f(), out.data(), outer, K, inner);
  }
  return out.result();
}

// labels as a contiguous int32 / int64 device array of shape (n,): a host array is copied over.
DevArray labels_arg(py::handle obj, index_t n) {
  py::module_ np = py::module_::import("numpy");
  py::object labels;
  if (is_array(obj)) labels = array_arg(obj, "labels", nullptr).obj;
  else labels = np.attr("asarray")(obj);
  const std::vector<index_t> shape = labels.attr("shape").cast<std::vector<index_t>>();
  if (shape != std::vector<index_t>{n})
    throw py::value_error("labels has shape " + shape_str(shape) + ", expected (" + std::to_string(n) + ",)");
  py::object dtype = labels.attr("dtype");
  if (!np.attr("issubdtype")(dtype, np.attr("integer")).cast<bool>())
    throw py::type_error("labels must have an integer dtype, got " + std::string(py::str(dtype)));
  if (!is_array(labels)) labels = from_host(labels.attr("astype")(np.attr("int64"), py::arg("copy") = false)).obj;
  array_arg_of(labels, "labels", {"int64", "int32"}, "labels must be int32 or int64 on the device, got ");
  return contig_arg(labels, "labels", nullptr);
}

py::tuple softmax_cross_entropy_(py::handle logits_obj, py::handle labels_obj) {
  const DevArray logits = contig_arg(logits_obj, "logits");
  if (logits.shape.size() != 2)
    throw py::value_error("logits must be 2-D (N, K), got shape " + shape_str(logits.shape));
  const index_t n = logits.shape[0], k = logits.shape[1];
  const DevArray labels = labels_arg(labels_obj, n);
  if (n && k == 0)  // every label is out of range [0, 0); there is no logit to read
    throw py::value_error("labels[0] = " + std::to_string(read_int(labels, 0)) + " is out of range [0, 0)");
  const DevArray grad = new_array({n, k});
  if (n == 0) return py::make_tuple(std::numeric_limits<double>::quiet_NaN(), grad.obj);
  index_t bad = -1;
  double loss;
  {
    DeviceGuard guard;
    loss = softmax_cross_entropy(logits.f(), reinterpret_cast<const void*>(labels.ptr), labels.itemsize == 8,
                                 grad.f(), n, k, &bad);
  }
  if (bad >= 0)
    throw py::value_error("labels[" + std::to_string(bad) + "] = " + std::to_string(read_int(labels, bad)) +
                          " is out of range [0, " + std::to_string(k) + ")");
  return py::make_tuple(loss, grad.obj);
}

}  // namespace

void bind_softmax(py::module_& m) {
  const py::arg_v axis = py::arg("axis") = -1, out = py::arg("out") = py::none();
  m.def("softmax", [](py::handle x, py::handle a, py::handle o) { return row_wise(x, a, o, softmax); }, py::arg("x"),
        axis, out);
  m.def("log_softmax", [](py::handle x, py::handle a, py::handle o) { return row_wise(x, a, o, log_softmax); },
        py::arg("x"), axis, out);
  m.def("softmax_backward", &softmax_backward_, py::arg("grad_y"), py::arg("y"), axis, out);
  m.def("softmax_cross_entropy", &softmax_cross_entropy_, py::arg("logits"), py::arg("labels"));
}

}  // namespace lamina::cuda::bind
