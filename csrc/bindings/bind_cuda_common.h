// bind_cuda_common.h: what the bindings of lamina._cuda's kernels (bind_cuda_<family>.cpp) share.
// A kernel's binding takes the reference's arguments, lamina.cuda arrays validated as the native
// bindings validate NumPy arrays (bind_cuda_array_arg.h), allocates its results from lamina's
// pool, makes lamina's device current for the call (DeviceGuard: whatever the calling thread's
// current device, restored after) and calls the family's launcher (lamina/cuda/<family>.h). No
// math, no loops over data.
#pragma once
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>

#include "lamina/cuda/common.h"
#include "lamina/cuda/device.h"

namespace lamina::cuda::bind {

namespace py = pybind11;
// One per family, called by module_cuda.cpp.
void bind_activation(py::module_& m);
void bind_array(py::module_& m);
void bind_conv(py::module_& m);
void bind_dropout(py::module_& m);
void bind_gemm(py::module_& m);
void bind_loss(py::module_& m);
void bind_norm(py::module_& m);
void bind_pool(py::module_& m);
void bind_rnn_cell(py::module_& m);
void bind_sgd(py::module_& m);
void bind_softmax(py::module_& m);
void bind_upsample(py::module_& m);

}  // namespace lamina::cuda::bind
