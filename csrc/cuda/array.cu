// array.cu: fill and copy over any strides, add and scale (one thread per element), gather_rows
// (a check pass, then the copy), argmax (one warp per row along the last axis, one thread per
// row along another), all_finite and dot (sums in double) (lamina/cuda/array.h).
#include "launch.cuh"
#include "lamina/cuda/array.h"
#include "lamina/cuda/launch_plan.h"

namespace lamina::cuda {
namespace {

// I: int where the element count and the strided extents fit (fits_index32), else index_t.
template <class I>
struct FillBody {
  char* base;
  Strided s;
  std::uint64_t bits;  // the value's bit pattern in the element type
  int itemsize;
  __device__ void operator()(I i) const {
    char* p = base + static_cast<index_t>(s.offset(i)) * itemsize;
    if (itemsize == 8) *reinterpret_cast<std::uint64_t*>(p) = bits;
    else *reinterpret_cast<std::uint32_t*>(p) = static_cast<std::uint32_t>(bits);
  }
};

template <class I>
struct CopyBody {
  const char* src;
  Strided ss;
  char* dst;
  Strided ds;
  int itemsize;
  __device__ void operator()(I i) const {
    const char* a = src + static_cast<index_t>(ss.offset(i)) * itemsize;
    char* b = dst + static_cast<index_t>(ds.offset(i)) * itemsize;
    if (itemsize == 8) *reinterpret_cast<std::uint64_t*>(b) = *reinterpret_cast<const std::uint64_t*>(a);
    else *reinterpret_cast<std::uint32_t*>(b) = *reinterpret_cast<const std::uint32_t*>(a);
  }
};

// Each index in [0, R), the first bad position recorded in *bad (gather_rows' check pass).
template <class I>
struct IndexCheckBody {
  const I* indices;
  unsigned long long* bad;
  index_t R;
  __device__ void operator()(index_t m) const {
    const I r = indices[m];
    if (r < 0 || static_cast<index_t>(r) >= R) record_bad(bad, m);
  }
};

// out (M, row) = x (R, row) [indices]: x and out contiguous, the indices checked already.
// J: the launch's index type (int where x and out fit, see gather), I: the indices' type.
template <class I, class J>
struct GatherRowsBody {
  const char* x;
  char* out;
  const I* indices;
  J row;  // row length in elements
  int itemsize;
  __device__ void operator()(J t) const {
    const J m = t / row, k = t % row;
    const char* a = x + static_cast<index_t>(static_cast<J>(indices[m]) * row + k) * itemsize;
    char* b = out + static_cast<index_t>(t) * itemsize;
    if (itemsize == 8) *reinterpret_cast<std::uint64_t*>(b) = *reinterpret_cast<const std::uint64_t*>(a);
    else *reinterpret_cast<std::uint32_t*>(b) = *reinterpret_cast<const std::uint32_t*>(a);
  }
};

// x (outer, K, inner) -> out (outer, inner) int64: the first maximum; a NaN counts as the
// maximum (the first NaN wins).
struct ArgmaxBody {
  const float* x;
  std::int64_t* out;
  index_t K, inner;
  __device__ void operator()(index_t r) const {
    const float* row = x + (r / inner) * K * inner + r % inner;
    float best = row[0];
    index_t bi = 0;
    if (best == best) {
      for (index_t k = 1; k < K; ++k) {
        const float v = row[k * inner];
        if (v != v) {
          bi = k;
          break;
        }
        if (v > best) {
          best = v;
          bi = k;
        }
      }
    }
    out[r] = bi;
  }
};

// 1 for a NaN or an infinity (summed: 0 means all finite).
struct NonFiniteBody {
  const float* x;
  __device__ double operator()(index_t i) const { return (x[i] - x[i]) == 0.0f ? 0.0 : 1.0; }
};

struct DotBody {
  const float* a;
  const float* b;
  __device__ double operator()(index_t i) const { return static_cast<double>(a[i]) * static_cast<double>(b[i]); }
};

// y = a + alpha * b   (add),  y = alpha * a  (scale: b null)
struct AxpyBody {
  const float* a;
  const float* b;
  float* out;
  float alpha;
  __device__ void operator()(index_t i) const { out[i] = b ? a[i] + alpha * b[i] : alpha * a[i]; }
};

Strided strided(int ndim, const index_t* shape, const index_t* strides) {
  if (ndim > kMaxDims) throw Error("lamina.cuda: fill / copy: at most " + std::to_string(kMaxDims) + " dimensions");
  Strided s{};
  s.ndim = ndim;
  for (int d = 0; d < ndim; ++d) {
    s.shape[d] = shape[d];
    s.strides[d] = strides[d];
  }
  return s;
}

index_t count(int ndim, const index_t* shape) {
  index_t n = 1;
  for (int d = 0; d < ndim; ++d) n *= shape[d];
  return n;
}

template <class I>
index_t gather(const void* x, index_t rows, index_t row, int itemsize, const I* indices, index_t m, void* out) {
  const index_t bad = first_bad("gather_rows (check indices)", IndexCheckBody<I>{indices, scratch().bad, rows}, m);
  if (bad >= 0) return bad;
  if (fits_index32(std::max(rows * row, m * row)))  // the indices are in [0, rows) by now
    launch_each("gather_rows", GatherRowsBody<I, int>{static_cast<const char*>(x), static_cast<char*>(out), indices,
                                                      static_cast<int>(row), itemsize}, static_cast<int>(m * row));
  else
    launch_each("gather_rows", GatherRowsBody<I, index_t>{static_cast<const char*>(x), static_cast<char*>(out), indices,
                                                          row, itemsize}, m * row);
  return -1;
}

// (value, index) of a lane's candidate: the first maximum, a NaN counting as the maximum (the
// first NaN wins); index kNone for a lane without elements.
constexpr long long kNone = 0x7fffffffffffffffll;
__device__ __forceinline__ bool better(float v, long long i, float bv, long long bi) {
  const bool vn = v != v, bn = bv != bv;
  if (vn || bn) return vn && (!bn || i < bi);
  return v > bv || (v == bv && i < bi);
}

// One warp per row of x (rows, K) contiguous: the lanes stride over the row, then combine.
__global__ void argmax_rows_kernel(const float* x, std::int64_t* out, index_t rows, int K) {
  const int lane = threadIdx.x & 31;
  const index_t warp0 = (static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const index_t warps = (static_cast<index_t>(gridDim.x) * blockDim.x) >> 5;
  for (index_t r = warp0; r < rows; r += warps) {  // the same rows for every lane of the warp
    const float* row = x + r * K;
    float best = -INFINITY;
    long long bi = kNone;
    for (int k = lane; k < K; k += 32) {
      const float v = row[k];
      if (better(v, k, best, bi)) {
        best = v;
        bi = k;
      }
    }
    for (int o = 16; o > 0; o >>= 1) {
      const float v = __shfl_xor_sync(0xffffffffu, best, o);
      const long long i = __shfl_xor_sync(0xffffffffu, bi, o);
      if (better(v, i, best, bi)) {
        best = v;
        bi = i;
      }
    }
    if (lane == 0) out[r] = bi;
  }
}

}  // namespace

void fill(void* x, std::uint64_t bits, int itemsize, int ndim, const index_t* shape, const index_t* strides) {
  const Strided s = strided(ndim, shape, strides);
  const index_t n = count(ndim, shape);
  if (fits_index32(std::max(n, s.extent())))
    launch_each("fill", FillBody<int>{static_cast<char*>(x), s, bits, itemsize}, static_cast<int>(n));
  else
    launch_each("fill", FillBody<index_t>{static_cast<char*>(x), s, bits, itemsize}, n);
}

void copy(const void* src, void* dst, int itemsize, int ndim, const index_t* shape, const index_t* src_strides,
          const index_t* dst_strides) {
  const Strided ss = strided(ndim, shape, src_strides), ds = strided(ndim, shape, dst_strides);
  const index_t n = count(ndim, shape);
  if (fits_index32(std::max({n, ss.extent(), ds.extent()})))
    launch_each("copy", CopyBody<int>{static_cast<const char*>(src), ss, static_cast<char*>(dst), ds, itemsize},
                static_cast<int>(n));
  else
    launch_each("copy", CopyBody<index_t>{static_cast<const char*>(src), ss, static_cast<char*>(dst), ds, itemsize}, n);
}

void add(const float* a, const float* b, float* y, index_t n, float alpha) {
  launch_each("add", AxpyBody{a, b, y, alpha}, n);
}

void scale(const float* x, float* y, index_t n, float alpha) { launch_each("scale", AxpyBody{x, nullptr, y, alpha}, n); }

index_t gather_rows(const void* x, index_t rows, index_t row, int itemsize, const void* indices, bool indices_i64,
                    index_t m, void* out) {
  if (indices_i64) return gather(x, rows, row, itemsize, static_cast<const std::int64_t*>(indices), m, out);
  return gather(x, rows, row, itemsize, static_cast<const std::int32_t*>(indices), m, out);
}

// Rows along the last axis (inner == 1): one warp per row (coalesced reads); along another axis
// one thread per row (neighbouring threads read neighbouring rows).
void argmax(const float* x, std::int64_t* out, index_t outer, index_t K, index_t inner) {
  const char* name = "argmax";
  const index_t n = outer * inner;
  if (n <= 0) return;
  if (inner != 1) return launch_each(name, ArgmaxBody{x, out, K, inner}, n);
  if (K >= (index_t(1) << 31))
    throw Error(std::string("lamina.cuda: ") + name + ": rows of 2^31 or more elements are not supported");
  const LaunchPlan p = warp_per_row_plan(n);
  LAMINA_LAUNCH(name, p.grid[0], p.block[0], 0, static_cast<cudaStream_t>(stream()), argmax_rows_kernel)(
      x, out, n, static_cast<int>(K));
  check_launch(name);
}

bool all_finite(const float* x, index_t n) { return n == 0 || sum("all_finite", NonFiniteBody{x}, n) == 0.0; }

double dot(const float* a, const float* b, index_t n) { return n == 0 ? 0.0 : sum("dot", DotBody{a, b}, n); }

}  // namespace lamina::cuda
