// bind_cuda_host.cpp: lamina._cuda.host: the same functions as lamina._cuda's kernels, running
// the same bodies (lamina/cuda/*.h, compiled here by the host compiler) in a plain loop over
// host memory, with the same orchestration (lamina/cuda/ops.h). lamina.cuda.host_backend()
// puts the Python backend on top of it, so every kernel and whole training runs are checked
// against lamina.reference on machines without a GPU. What it cannot check: the launches, the
// tiled SGEMM and cuBLAS (its gemm is GemmNaiveBody), the device reductions and atomics.
#include <cstring>
#include <vector>

#include "bind_cuda_ops.h"

namespace lamina::cuda::bind {
namespace {

struct HostTemp {
  std::vector<float> v;
  explicit HostTemp(std::size_t nbytes) : v((nbytes + sizeof(float) - 1) / sizeof(float)) {}
  float* f() { return v.data(); }
};

struct HostExec {
  using Temp = HostTemp;
  unsigned long long bad = kNoBad;
  double acc = 0.0;
  template <class B>
  void each(const char*, const B& body, index_t n) {
    for (index_t i = 0; i < n; ++i) body(i);
  }
  template <class B>
  void sum(const char*, const B& body, index_t n) {
    acc = 0.0;
    for (index_t i = 0; i < n; ++i) acc += body(i);
  }
  double result(index_t* b) {
    if (b) *b = bad == kNoBad ? -1 : static_cast<index_t>(bad);
    return acc;
  }
  void reset_bad() { bad = kNoBad; }
  unsigned long long* bad_flag() { return &bad; }
  void zero(void* p, std::size_t nbytes) { std::memset(p, 0, nbytes); }
  void set_bytes(void* p, int byte, std::size_t nbytes) { std::memset(p, byte, nbytes); }
  void gemm(const GemmArgs& g) {
    if (g.M > 0 && g.N > 0) each("gemm", GemmNaiveBody{g}, g.M * g.N);
  }
  void row_sums(const float* a, float* out, index_t rows, index_t cols) {
    each("row_sums", RowSumBody{a, out, cols}, rows);
  }
};

HostExec g_host;

}  // namespace

void bind_host(py::module_& m) { bind_ops(m, g_host); }

}  // namespace lamina::cuda::bind
