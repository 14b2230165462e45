// cuda/array.h: the small array operations of the model layer (bodies + launchers):
// fill and copy over any strides (4- or 8-byte elements: float32, int32, int64, float64),
// gather_rows, argmax along an axis, and the reductions all_finite and dot.
#pragma once
#include "lamina/cuda/common.h"

namespace lamina::cuda {

struct FillBody {
  char* base;
  Strided s;
  std::uint64_t bits;  // the value's bit pattern in the element type
  int itemsize;
  LAMINA_HD void operator()(index_t i) const {
    char* p = base + s.offset(i) * itemsize;
    if (itemsize == 8) *reinterpret_cast<std::uint64_t*>(p) = bits;
    else *reinterpret_cast<std::uint32_t*>(p) = static_cast<std::uint32_t>(bits);
  }
};

struct CopyBody {
  const char* src;
  Strided ss;
  char* dst;
  Strided ds;
  int itemsize;
  LAMINA_HD void operator()(index_t i) const {
    const char* a = src + ss.offset(i) * itemsize;
    char* b = dst + ds.offset(i) * itemsize;
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
  LAMINA_HD void operator()(index_t m) const {
    const I r = indices[m];
    if (r < 0 || static_cast<index_t>(r) >= R) record_bad(bad, m);
  }
};

// out (M, row) = x (R, row) [indices]: x and out contiguous, the indices checked already.
template <class I>
struct GatherRowsBody {
  const char* x;
  char* out;
  const I* indices;
  index_t row;  // row length in elements
  int itemsize;
  LAMINA_HD void operator()(index_t t) const {
    const index_t m = t / row, k = t % row;
    const char* a = x + (static_cast<index_t>(indices[m]) * row + k) * itemsize;
    char* b = out + t * itemsize;
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
  LAMINA_HD void operator()(index_t r) const {
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
  LAMINA_HD double operator()(index_t i) const { return (x[i] - x[i]) == 0.0f ? 0.0 : 1.0; }
};

struct DotBody {
  const float* a;
  const float* b;
  LAMINA_HD double operator()(index_t i) const { return static_cast<double>(a[i]) * static_cast<double>(b[i]); }
};


// Device launches of the bodies (csrc/cuda/array.cu), one grid-stride loop each.
void launch(const char* name, const FillBody& body, index_t n);
void launch(const char* name, const CopyBody& body, index_t n);
void launch(const char* name, const IndexCheckBody<std::int64_t>& body, index_t n);
void launch(const char* name, const IndexCheckBody<std::int32_t>& body, index_t n);
void launch(const char* name, const GatherRowsBody<std::int64_t>& body, index_t n);
void launch(const char* name, const GatherRowsBody<std::int32_t>& body, index_t n);
void launch(const char* name, const ArgmaxBody& body, index_t n);
void launch_sum(const char* name, const NonFiniteBody& body, index_t n);  // sum left in scratch().result
void launch_sum(const char* name, const DotBody& body, index_t n);  // sum left in scratch().result

}  // namespace lamina::cuda
