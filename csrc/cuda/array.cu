// array.cu: fill and copy over any strides, gather_rows (a check pass, then the copy), argmax,
// all_finite, dot.
#include "launch.cuh"
#include "lamina/cuda/array.h"

namespace lamina::cuda {
LAMINA_CUDA_EACH(FillBody)
LAMINA_CUDA_EACH(CopyBody)
LAMINA_CUDA_EACH(IndexCheckBody<std::int64_t>)
LAMINA_CUDA_EACH(IndexCheckBody<std::int32_t>)
LAMINA_CUDA_EACH(GatherRowsBody<std::int64_t>)
LAMINA_CUDA_EACH(GatherRowsBody<std::int32_t>)
LAMINA_CUDA_EACH(ArgmaxBody)
LAMINA_CUDA_SUM(NonFiniteBody)
LAMINA_CUDA_SUM(DotBody)
}  // namespace lamina::cuda
