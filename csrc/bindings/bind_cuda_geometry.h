// bind_cuda_geometry.h: the window geometry of pooling and convolution read from the reference's
// arguments (kernel_size, stride, padding, dilation: an int or a pair) with the reference's
// errors (lamina/reference/_geometry.py), for bind_cuda_pool.cpp and bind_cuda_conv.cpp.
#pragma once
#include <pybind11/pybind11.h>

#include <string>
#include <utility>

#include "lamina/cuda/common.h"

namespace lamina::cuda::bind {

namespace py = pybind11;

// An int (Python or NumPy, not a bool) for both dimensions, or a tuple / list of two -> (h, w):
// ValueError for another length, TypeError for anything not an int, naming `name`.
std::pair<index_t, index_t> pair_arg(py::handle v, const char* name);
// "(a, b)", as Python writes a tuple of two ints.
std::string pair_str(index_t a, index_t b);
// (OH, OW) of a (dilated) kernel sliding over the zero-padded (H, W) input, with the reference's
// ValueError for a size below 1, a negative padding or an output below 1.
std::pair<index_t, index_t> conv_output_shape(index_t H, index_t W, index_t kh, index_t kw, index_t sh, index_t sw,
                                              index_t ph, index_t pw, index_t dh = 1, index_t dw = 1);

}  // namespace lamina::cuda::bind
