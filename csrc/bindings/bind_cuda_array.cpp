// bind_cuda_array.cpp: lamina._cuda's fill, copy, add, scale, gather_rows, argmax, all_finite and
// dot (lamina/cuda/array.h) on device addresses; shapes and element strides as lists.
#include "bind_cuda_common.h"
#include "lamina/cuda/array.h"

namespace lamina::cuda::bind {

namespace {
void check_dims(const std::vector<index_t>& shape, const std::vector<index_t>& strides) {
  if (shape.size() != strides.size() || shape.size() > static_cast<std::size_t>(kMaxDims))
    throw py::value_error("lamina._cuda: at most 8 dimensions, shape and strides of one length");
}
}  // namespace

void bind_array(py::module_& m) {
  m.def("fill", [](P x, const std::vector<index_t>& shape, const std::vector<index_t>& strides, std::uint64_t bits,
                   int itemsize) {
    check_dims(shape, strides);
    DeviceGuard guard;
    fill(ptr<void>(x), bits, itemsize, static_cast<int>(shape.size()), shape.data(), strides.data());
  });
  m.def("copy", [](P src, const std::vector<index_t>& shape, const std::vector<index_t>& sstrides, P dst,
                   const std::vector<index_t>& dstrides, int itemsize) {
    check_dims(shape, sstrides);
    check_dims(shape, dstrides);
    DeviceGuard guard;
    copy(ptr<const void>(src), ptr<void>(dst), itemsize, static_cast<int>(shape.size()), shape.data(),
         sstrides.data(), dstrides.data());
  });
  m.def("add", [](P a, P b, P y, index_t n, float alpha) {
    DeviceGuard guard;
    add(ptr(a), ptr(b), ptr(y), n, alpha);
  });
  m.def("scale", [](P x, P y, index_t n, float alpha) {
    DeviceGuard guard;
    scale(ptr(x), ptr(y), n, alpha);
  });
  m.def("gather_rows", [](P x, index_t rows, index_t row, int itemsize, P idx, bool idx_i64, index_t M, P out) {
    DeviceGuard guard;
    return gather_rows(ptr<const void>(x), rows, row, itemsize, ptr<const void>(idx), idx_i64, M, ptr<void>(out));
  });
  m.def("argmax", [](P x, P out, index_t outer, index_t K, index_t inner) {
    DeviceGuard guard;
    argmax(ptr(x), ptr<std::int64_t>(out), outer, K, inner);
  });
  m.def("all_finite", [](P x, index_t n) {
    DeviceGuard guard;
    return all_finite(ptr(x), n);
  });
  m.def("dot", [](P a, P b, index_t n) {
    DeviceGuard guard;
    return dot(ptr(a), ptr(b), n);
  });
}

}  // namespace lamina::cuda::bind
