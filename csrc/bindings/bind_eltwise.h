// bind_eltwise.h: small argument helpers shared by the element-wise, row, loss, dropout, SGD
// and pooling bindings (on top of bind_common.h).
#pragma once
#include <string>

#include "bind_common.h"

namespace lamina::bind {

// f32_contig_arg that also accepts empty arrays: NumPy gives those stride 0, which
// View::c_contiguous() reads as strided. Nothing is read from an empty array.
inline View contig_arg(py::handle obj, const char* name, int ndim = -1, bool writeable = false) {
  View v = f32_arg(obj, name, ndim, writeable);
  if (v.size() > 0 && !v.c_contiguous())
    value_error(std::string(name) + " must be C-contiguous; pass np.ascontiguousarray(" + name + ")");
  return v;
}

}  // namespace lamina::bind
