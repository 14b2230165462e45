// bind_cuda_ops.h: the kernel entry points of lamina._cuda, bound once over an executor X
// (lamina/cuda/ops.h): bind_ops(m, DeviceExec) gives lamina._cuda's kernels on the GPU,
// bind_ops(m.host, HostExec) the same functions running the same bodies on the host.
// Pointers are Python ints (device addresses, or host addresses for HostExec) of arrays that
// python/lamina/cuda/_backend.py has validated (shapes, dtypes, contiguity) and allocated.
#pragma once
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <vector>

#include "lamina/cuda/ops.h"

namespace lamina::cuda::bind {

namespace py = pybind11;
using P = std::uintptr_t;
template <class T = float>
T* ptr(P p) { return reinterpret_cast<T*>(p); }
template <class T = float>
T* opt(P p) { return p ? reinterpret_cast<T*>(p) : nullptr; }

inline Strided strided(const std::vector<index_t>& shape, const std::vector<index_t>& strides) {
  if (shape.size() != strides.size() || shape.size() > static_cast<std::size_t>(kMaxDims))
    throw py::value_error("lamina._cuda: at most 8 dimensions, shape and strides of one length");
  Strided s{};
  s.ndim = static_cast<int>(shape.size());
  for (int d = 0; d < s.ndim; ++d) {
    s.shape[d] = shape[d];
    s.strides[d] = strides[d];
  }
  return s;
}
inline index_t count(const std::vector<index_t>& shape) {
  index_t n = 1;
  for (index_t s : shape) n *= s;
  return n;
}

inline ConvGeom conv_geom(const std::vector<index_t>& v) {
  if (v.size() != 15) throw py::value_error("conv geometry: 15 ints");
  return ConvGeom{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14]};
}
inline PoolGeom pool_geom(const std::vector<index_t>& v) {
  if (v.size() != 11) throw py::value_error("pool geometry: 11 ints");
  return PoolGeom{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10]};
}

static const char* const kActNames[] = {"relu", "relu_backward", "sigmoid", "sigmoid_backward", "tanh",
                                        "tanh_backward", "leaky_relu", "leaky_relu_backward"};

template <class X>
void bind_ops(py::module_& m, X& x) {
  X* e = &x;
  m.def("activation", [e](int kind, P a, P b, P out, index_t n, float slope) {
    if (kind < 0 || kind > 7) throw py::value_error("activation kind");
    e->each(kActNames[kind], ActBody{static_cast<Act>(kind), ptr(a), opt(b), ptr(out), slope}, n);
  });
  m.def("axpy", [e](P a, P b, P out, index_t n, float alpha) {
    e->each(b ? "add" : "scale", AxpyBody{ptr(a), opt(b), ptr(out), alpha}, n);
  });
  m.def("gemm", [e](P A, P B, P C, P bias, index_t M, index_t N, index_t K, index_t lda, index_t ldb, index_t ldc,
                    bool ta, bool tb, int bias_mode, bool relu, index_t nchw_p) {
    e->gemm(GemmArgs{ptr(A), ptr(B), ptr(C), opt(bias), M, N, K, lda, ldb, ldc, ta, tb, bias_mode, relu, nchw_p});
  });
  m.def("conv2d", [e](const std::vector<index_t>& geom, P in, P w, P b, bool relu, P y) {
    ops::conv2d(*e, conv_geom(geom), ptr(in), ptr(w), opt(b), relu, ptr(y));
  });
  m.def("conv2d_backward", [e](const std::vector<index_t>& geom, P in, P w, P gy, P gx, P gw, P gb) {
    ops::conv2d_backward(*e, conv_geom(geom), ptr(in), ptr(w), ptr(gy), opt(gx), ptr(gw), ptr(gb));
  });
  m.def("max_pool2d", [e](const std::vector<index_t>& geom, P in, P y, P idx) {
    const PoolGeom g = pool_geom(geom);
    e->each("max_pool2d", MaxPoolBody{ptr(in), ptr(y), ptr<std::int64_t>(idx), g}, g.planes * g.OH * g.OW);
  });
  m.def("max_pool2d_backward", [e](const std::vector<index_t>& geom, P gy, P idx, P gx) {
    return ops::max_pool2d_backward(*e, pool_geom(geom), ptr(gy), ptr<const std::int64_t>(idx), ptr(gx));
  });
  m.def("avg_pool2d", [e](const std::vector<index_t>& geom, P in, P y) {
    const PoolGeom g = pool_geom(geom);
    e->each("avg_pool2d", AvgPoolBody{ptr(in), ptr(y), g}, g.planes * g.OH * g.OW);
  });
  m.def("avg_pool2d_backward", [e](const std::vector<index_t>& geom, P gy, P gx) {
    const PoolGeom g = pool_geom(geom);
    e->each("avg_pool2d_backward", AvgPoolBackwardBody{ptr(gy), ptr(gx), g}, g.planes * g.H * g.W);
  });
  m.def("upsample_nearest2d", [e](P in, P y, index_t planes, index_t H, index_t W, index_t s) {
    e->each("upsample_nearest2d", UpsampleBody{ptr(in), ptr(y), H, W, s}, planes * H * s * W * s);
  });
  m.def("upsample_nearest2d_backward", [e](P gy, P gx, index_t planes, index_t H, index_t W, index_t s) {
    e->each("upsample_nearest2d_backward", UpsampleBackwardBody{ptr(gy), ptr(gx), H, W, s}, planes * H * W);
  });
  m.def("softmax", [e](P in, P y, index_t outer, index_t K, index_t inner, bool log) {
    const Rows r{outer, K, inner};
    e->each(log ? "log_softmax" : "softmax", SoftmaxBody{ptr(in), ptr(y), r, log}, r.count());
  });
  m.def("softmax_backward", [e](P gy, P y, P gx, index_t outer, index_t K, index_t inner) {
    const Rows r{outer, K, inner};
    e->each("softmax_backward", SoftmaxBackwardBody{ptr(gy), ptr(y), ptr(gx), r}, r.count());
  });
  m.def("softmax_cross_entropy", [e](P logits, P labels, bool labels64, P grad, index_t N, index_t K) {
    index_t bad = -1;
    const double loss = ops::softmax_cross_entropy(*e, ptr(logits), ptr<void>(labels), labels64, ptr(grad), N, K, &bad);
    return py::make_tuple(loss, bad);
  });
  m.def("mse", [e](P pred, P target, P grad, index_t n, index_t rows) {
    e->sum("mse", MseBody{ptr(pred), ptr(target), ptr(grad), static_cast<float>(rows)}, n);
    return e->result(nullptr) / (2.0 * static_cast<double>(rows));
  });
  m.def("binary_cross_entropy", [e](P prob, P target, P grad, index_t n, double eps) {
    const float lo = static_cast<float>(eps), hi = static_cast<float>(1.0 - eps);
    e->sum("binary_cross_entropy", BceBody{ptr(prob), ptr(target), ptr(grad), lo, hi, static_cast<float>(n)}, n);
    return -e->result(nullptr) / static_cast<double>(n);
  });
  m.def("dropout", [e](P in, P y, P mask, index_t n, double p, std::uint64_t seed) {
    const float scale = static_cast<float>(1.0 / (1.0 - p));
    e->each("dropout", DropoutBody{ptr(in), ptr(y), ptr(mask), dropout_key(seed), dropout_threshold(p), scale}, n);
  });
  m.def("dropout_backward", [e](P gy, P mask, P gx, index_t n, double p) {
    const float scale = static_cast<float>(1.0 / (1.0 - p));
    e->each("dropout_backward", DropoutBackwardBody{ptr(gy), ptr(mask), ptr(gx), scale}, n);
  });
  m.def("sgd_step", [e](P param, P grad, P vel, P param_out, P vel_out, index_t n, float lr, float momentum,
                        float weight_decay, bool nesterov) {
    e->each("sgd_step", SgdBody{ptr(param), ptr(grad), opt(vel), ptr(param_out), opt(vel_out), lr, momentum,
                                weight_decay, nesterov}, n);
  });
  m.def("adam_step", [e](P param, P grad, P mm, P vv, P param_out, P m_out, P v_out, index_t n, double lr,
                         std::int64_t step, double beta1, double beta2, double eps, double weight_decay,
                         bool decoupled) {
    e->each("adam_step", AdamBody{ptr(param), ptr(grad), ptr(mm), ptr(vv), ptr(param_out), ptr(m_out), ptr(v_out),
                                  adam_coef(lr, step, beta1, beta2, eps, weight_decay, decoupled)}, n);
  });
  m.def("fill", [e](P base, const std::vector<index_t>& shape, const std::vector<index_t>& strides, std::uint64_t bits,
                    int itemsize) {
    e->each("fill", FillBody{ptr<char>(base), strided(shape, strides), bits, itemsize}, count(shape));
  });
  m.def("copy", [e](P src, const std::vector<index_t>& shape, const std::vector<index_t>& sstrides, P dst,
                    const std::vector<index_t>& dstrides, int itemsize) {
    e->each("copy", CopyBody{ptr<const char>(src), strided(shape, sstrides), ptr<char>(dst), strided(shape, dstrides),
                             itemsize}, count(shape));
  });
  m.def("gather_rows", [e](P src, P out, P idx, bool idx64, index_t R, index_t M, index_t row, int itemsize) {
    return ops::gather_rows(*e, ptr<const char>(src), ptr<char>(out), ptr<void>(idx), idx64, R, M, row, itemsize);
  });
  m.def("argmax", [e](P in, P out, index_t outer, index_t K, index_t inner) {
    e->each("argmax", ArgmaxBody{ptr(in), ptr<std::int64_t>(out), K, inner}, outer * inner);
  });
  m.def("all_finite", [e](P in, index_t n) {
    if (n == 0) return true;
    e->sum("all_finite", NonFiniteBody{ptr(in)}, n);
    return e->result(nullptr) == 0.0;
  });
  m.def("dot", [e](P a, P b, index_t n) {
    if (n == 0) return 0.0;
    e->sum("dot", DotBody{ptr(a), ptr(b)}, n);
    return e->result(nullptr);
  });
}

}  // namespace lamina::cuda::bind
