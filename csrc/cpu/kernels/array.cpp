// array.cpp: the small array operations of the model layer. Compiled once per ISA.
//
//   fill        x[i] = value                                  flat float32
//   copy        dst[idx] = src[idx] over an N-d index space     any element strides both sides,
//               itemsize 4 (float32, int32) or 8 (int64); transpose = copy with permuted src
//               strides (the binding permutes them), so both share this one routine
//   add         y = a + alpha * b  (one fused multiply-add)     flat float32, y may be a or b
//   scale       y = alpha * x                                  flat float32, y may be x
//   gather_rows out[i] = x[indices[i]]                         rows of row_bytes, memcpy each
//   argmax      first maximum along K of x (outer, K, inner)    NaN is the maximum, first NaN wins
//   all_finite  no NaN / inf                                    sum of x * 0 is NaN iff one is
//   dot         sum a * b in double                             fixed chunks, thread-count exact
//
// copy: size-1 dimensions are dropped, the rest ordered by |dst stride| (largest first, so dst
// is written in its memory order) and adjacent dimensions merged where both sides allow; then
//   - innermost contiguous on both sides: memcpy of rows;
//   - dst contiguous innermost but src contiguous along another dimension (a transpose): that
//     dimension becomes the second-innermost and the two are copied in 32 x 32 tiles, so both
//     sides stream whole cache lines;
//   - otherwise element by element with the strides.
// Work items (rows, row pieces or tiles) are split over threads only for large copies; each
// thread walks its items with an odometer over the outer dimensions (no divisions per item).
#include "lamina/array.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "eltwise.h"
#include "vmath.h"
#include "workspace.h"

namespace lamina::cpu::LAMINA_ISA_NS {
namespace {

using namespace simd;

constexpr double kCopyPerThread = 64 * 1024;  // elements moved before splitting (memory bound)
constexpr double kCheapPerThread = 48 * 1024;  // element-wise float kernels, as activation.cpp
constexpr double kScanPerThread = 64 * 1024;   // reductions that only read (all_finite, dot)
constexpr index_t kTile = 32;

struct Dim {
  index_t n, s, d;  // extent, src stride, dst stride (elements)
};

// The multi-index over `nd` outer dimensions, with the src / dst offsets it points at.
struct Odometer {
  const Dim* dims;
  int nd;
  std::vector<index_t> idx;
  index_t s_off = 0, d_off = 0;
  Odometer(const Dim* d, int n, index_t flat) : dims(d), nd(n), idx(static_cast<std::size_t>(n)) {
    for (int k = nd - 1; k >= 0; --k) {
      idx[k] = flat % dims[k].n;
      flat /= dims[k].n;
      s_off += idx[k] * dims[k].s;
      d_off += idx[k] * dims[k].d;
    }
  }
  void next() {
    for (int k = nd - 1; k >= 0; --k) {
      if (++idx[k] < dims[k].n) {
        s_off += dims[k].s;
        d_off += dims[k].d;
        return;
      }
      s_off -= (dims[k].n - 1) * dims[k].s;
      d_off -= (dims[k].n - 1) * dims[k].d;
      idx[k] = 0;
    }
  }
};

template <class T>
void copy_line(const T* src, T* dst, index_t n, index_t s, index_t d) {
  if (s == 1 && d == 1) {
    std::memcpy(dst, src, static_cast<std::size_t>(n) * sizeof(T));
  } else if (d == 1) {
    for (index_t i = 0; i < n; ++i) dst[i] = src[i * s];
  } else {
    for (index_t i = 0; i < n; ++i) dst[i * d] = src[i * s];
  }
}

// dims: size > 1 each, ordered and merged; total = product of extents.
template <class T>
void copy_dims(const T* src, T* dst, std::vector<Dim> dims, index_t total) {
  int nd = static_cast<int>(dims.size());
  const int nt = threads_for(double(total), kCopyPerThread);
  bool tiled = false;
  if (nd >= 2 && dims[nd - 1].d == 1 && dims[nd - 1].s != 1) {
    for (int j = nd - 2; j >= 0; --j) {
      if (dims[j].s == 1) {
        std::rotate(dims.begin() + j, dims.begin() + j + 1, dims.end() - 1);  // j -> nd - 2
        tiled = true;
        break;
      }
    }
  }
  const Dim in = dims[nd - 1];
  const int nouter = nd - 1 - (tiled ? 1 : 0);
  index_t outer = 1;
  for (int k = 0; k < nouter; ++k) outer *= dims[k].n;

  if (tiled) {
    const Dim mid = dims[nd - 2];  // mid.s == 1, in.d == 1
    const index_t ta = ceil_div(mid.n, kTile), tb = ceil_div(in.n, kTile), per = ta * tb;
    parallel_range(outer * per, nt, [&](index_t lo, index_t hi) {
      Odometer od(dims.data(), nouter, lo / per);
      index_t t = lo % per;
      for (index_t it = lo; it < hi; ++it) {
        const index_t a0 = (t / tb) * kTile, b0 = (t % tb) * kTile;
        const index_t a1 = min_of(mid.n, a0 + kTile), b1 = min_of(in.n, b0 + kTile);
        const T* s = src + od.s_off;
        T* d = dst + od.d_off;
        for (index_t a = a0; a < a1; ++a)
          for (index_t b = b0; b < b1; ++b) d[a * mid.d + b] = s[a + b * in.s];
        if (++t == per) {
          t = 0;
          od.next();
        }
      }
    }, 1);
    return;
  }
  // Rows of `in`, cut into pieces when there are fewer rows than threads.
  const index_t pieces = outer >= nt ? 1 : ceil_div(nt, outer);
  const index_t piece = round_up(ceil_div(in.n, pieces), 64);
  const index_t per = ceil_div(in.n, piece);
  parallel_range(outer * per, nt, [&](index_t lo, index_t hi) {
    Odometer od(dims.data(), nouter, lo / per);
    index_t t = lo % per;
    for (index_t it = lo; it < hi; ++it) {
      const index_t b0 = t * piece, b1 = min_of(in.n, b0 + piece);
      copy_line(src + od.s_off + b0 * in.s, dst + od.d_off + b0 * in.d, b1 - b0, in.s, in.d);
      if (++t == per) {
        t = 0;
        od.next();
      }
    }
  }, 1);
}

template <class I>
index_t first_bad_index(const I* idx, index_t m, index_t rows) {
  for (index_t i = 0; i < m; ++i)
    if (idx[i] < 0 || static_cast<index_t>(idx[i]) >= rows) return i;
  return -1;
}

template <class I>
void gather_typed(const char* x, index_t row_bytes, const I* idx, index_t m, char* out) {
  const int nt = threads_for(double(m) * double(row_bytes) / 4.0, kCopyPerThread);
  parallel_range(m, nt, [&](index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i)
      std::memcpy(out + i * row_bytes, x + static_cast<index_t>(idx[i]) * row_bytes,
                  static_cast<std::size_t>(row_bytes));
  }, 1);
}

// Replace the running best (value, index) by (v, k)? Only while the best is not NaN, when v is
// larger or v is NaN: the first maximum, or the first NaN, wins.
inline bool better(float v, float best) { return best == best && (v > best || v != v); }

void argmax_row(const float* x, index_t K, std::int64_t* out) {
  float best = x[0];
  index_t bi = 0;
  if (best == best) {
    for (index_t k = 1; k < K; ++k) {
      const float v = x[k];
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
  *out = bi;
}

// Columns [j0, j1) of the (K, inner) slab: a running best per column, rows read contiguously.
void argmax_columns(const float* x, index_t K, index_t inner, index_t j0, index_t j1,
                    std::int64_t* out, float* best) {
  const index_t w = j1 - j0;
  for (index_t j = 0; j < w; ++j) {
    best[j] = x[j0 + j];
    out[j] = 0;
  }
  for (index_t k = 1; k < K; ++k) {
    const float* xr = x + k * inner + j0;
    for (index_t j = 0; j < w; ++j) {
      if (better(xr[j], best[j])) {
        best[j] = xr[j];
        out[j] = k;
      }
    }
  }
}

// NaN when any of x[0, n) is NaN or +-inf (x * 0 is NaN exactly then), else +-0.
float nonfinite_probe(const float* x, index_t n) {
  vf acc = zero();
  index_t i = 0;
  for (; i + W <= n; i += W) acc = add(acc, mul(load(x + i), zero()));
  if (i < n) acc = add(acc, mul(load_mask(x + i, tail_mask(static_cast<int>(n - i))), zero()));
  return hsum(acc);
}

// sum a[i] * b[i] in double with eight independent partial sums (vectorisable, fixed order).
double dot_chunk(const float* a, const float* b, index_t n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  index_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) acc[l] += double(a[i + l]) * double(b[i + l]);
  for (int l = 0; i < n; ++i, ++l) acc[l] += double(a[i]) * double(b[i]);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

}  // namespace

void fill(float* x, index_t n, float value) {
  parallel_range(n, threads_for(double(n), kCheapPerThread), [&](index_t lo, index_t hi) {
    const vf v = set1(value);
    index_t i = lo;
    for (; i + W <= hi; i += W) store(x + i, v);
    if (i < hi) store_mask(x + i, tail_mask(static_cast<int>(hi - i)), v);
  });
}

void copy(const void* src, void* dst, int itemsize, int ndim, const index_t* shape,
                const index_t* src_strides, const index_t* dst_strides) {
  std::vector<Dim> dims;
  index_t total = 1;
  for (int k = 0; k < ndim; ++k) {
    if (shape[k] == 0) return;
    if (shape[k] == 1) continue;
    dims.push_back({shape[k], src_strides[k], dst_strides[k]});
    total *= shape[k];
  }
  if (dims.empty()) {  // one element
    std::memcpy(dst, src, static_cast<std::size_t>(itemsize));
    return;
  }
  std::stable_sort(dims.begin(), dims.end(), [](const Dim& a, const Dim& b) {
    return (a.d < 0 ? -a.d : a.d) > (b.d < 0 ? -b.d : b.d);
  });
  std::vector<Dim> merged{dims[0]};
  for (std::size_t k = 1; k < dims.size(); ++k) {
    Dim& p = merged.back();
    const Dim& c = dims[k];
    if (p.s == c.s * c.n && p.d == c.d * c.n) p = {p.n * c.n, c.s, c.d};
    else merged.push_back(c);
  }
  if (itemsize == 4)
    copy_dims(static_cast<const std::uint32_t*>(src), static_cast<std::uint32_t*>(dst), merged, total);
  else
    copy_dims(static_cast<const std::uint64_t*>(src), static_cast<std::uint64_t*>(dst), merged, total);
}

void add(const float* a, const float* b, float* y, index_t n, float alpha) {
  const vf va = set1(alpha);
  parallel_range(n, threads_for(double(n), kCheapPerThread), [&](index_t lo, index_t hi) {
    map2(a + lo, b + lo, y + lo, hi - lo, [va](vf x, vf z) { return fma(va, z, x); });
  });
}

void scale(const float* x, float* y, index_t n, float alpha) {
  const vf va = set1(alpha);
  parallel_range(n, threads_for(double(n), kCheapPerThread), [&](index_t lo, index_t hi) {
    map1(x + lo, y + lo, hi - lo, [va](vf v) { return mul(va, v); });
  });
}

index_t gather_rows(const void* x, index_t rows, index_t row_bytes, const void* indices,
                    bool indices_i64, index_t m, void* out) {
  const char* xs = static_cast<const char*>(x);
  char* o = static_cast<char*>(out);
  if (indices_i64) {
    const auto* idx = static_cast<const std::int64_t*>(indices);
    const index_t bad = first_bad_index(idx, m, rows);
    if (bad >= 0) return bad;
    gather_typed(xs, row_bytes, idx, m, o);
  } else {
    const auto* idx = static_cast<const std::int32_t*>(indices);
    const index_t bad = first_bad_index(idx, m, rows);
    if (bad >= 0) return bad;
    gather_typed(xs, row_bytes, idx, m, o);
  }
  return -1;
}

void argmax(const float* x, std::int64_t* out, index_t outer, index_t K, index_t inner) {
  if (outer <= 0 || K <= 0 || inner <= 0) return;
  const int nt = threads_for(double(outer) * K * inner, kScanPerThread);
  if (inner == 1) {
    parallel_for(outer, nt, [&](index_t r) { argmax_row(x + r * K, K, out + r); });
    return;
  }
  const index_t cw = min_of<index_t>(inner, 1024);
  const index_t chunks = ceil_div(inner, cw);
  parallel_for(outer * chunks, nt, [&](index_t item) {
    const index_t o = item / chunks, j0 = (item % chunks) * cw, j1 = min_of(inner, j0 + cw);
    float* best = thread_buffer(0, workspace_floats(1, cw));
    argmax_columns(x + o * K * inner, K, inner, j0, j1, out + o * inner + j0, best);
  });
}

bool all_finite(const float* x, index_t n) {
  constexpr index_t kBlock = 4096;  // checked between blocks, so a NaN early stops the scan
  std::atomic<bool> bad{false};
  parallel_range(n, threads_for(double(n), kScanPerThread), [&](index_t lo, index_t hi) {
    for (index_t i = lo; i < hi && !bad.load(std::memory_order_relaxed); i += kBlock) {
      const float p = nonfinite_probe(x + i, min_of(hi, i + kBlock) - i);
      if (p != p) bad.store(true, std::memory_order_relaxed);
    }
  });
  return !bad.load();
}

double dot(const float* a, const float* b, index_t n) {
  return chunked_sum(n, kScanPerThread, [&](index_t lo, index_t hi) { return dot_chunk(a + lo, b + lo, hi - lo); });
}

}  // namespace lamina::cpu::LAMINA_ISA_NS
