// bind_cuda_device.cpp: lamina._cuda's kernels on the GPU: bind_ops over DeviceExec, whose
// each() / sum() call the device launches of csrc/cuda/<family>.cu (declared per body type in
// lamina/cuda/<family>.h), gemm() the tiled SGEMM or cuBLAS, and whose reductions and flags
// live in the device scratch (read back with one synchronising copy).
#include <cstring>

#include "bind_cuda_ops.h"
#include "lamina/cuda/device.h"

namespace lamina::cuda::bind {
namespace {

// Every call makes lamina's device current for its duration (DeviceGuard), whatever the calling
// thread's current device, and restores it after.
struct DeviceExec {
  using Temp = TempBuffer;
  template <class B>
  void each(const char* name, const B& body, index_t n) {
    DeviceGuard guard;
    if (n > 0) launch(name, body, n);
  }
  template <class B>
  void sum(const char* name, const B& body, index_t n) {
    DeviceGuard guard;
    launch_sum(name, body, n);
  }
  double result(index_t* bad) { return read_result(bad); }
  void reset_bad() { lamina::cuda::reset_bad(); }
  unsigned long long* bad_flag() { return scratch().bad; }
  void zero(void* p, std::size_t nbytes) { memset_async(p, 0, nbytes); }
  void set_bytes(void* p, int byte, std::size_t nbytes) { memset_async(p, byte, nbytes); }
  void gemm(const GemmArgs& g) {
    DeviceGuard guard;
    lamina::cuda::gemm(g);
  }
  void row_sums(const float* a, float* out, index_t rows, index_t cols) { lamina::cuda::row_sums(a, out, rows, cols); }
};

DeviceExec g_device;

}  // namespace

void bind_kernels(py::module_& m) { bind_ops(m, g_device); }

}  // namespace lamina::cuda::bind
