// softmax.cu: softmax / log_softmax / softmax_backward (one thread per row) and the losses:
// softmax cross-entropy (gradient and per-row loss in one pass, summed in double), mse, bce.
#include "launch.cuh"
#include "lamina/cuda/softmax.h"

namespace lamina::cuda {
LAMINA_CUDA_EACH(SoftmaxBody)
LAMINA_CUDA_EACH(SoftmaxBackwardBody)
LAMINA_CUDA_SUM(SoftmaxXentBody<std::int64_t>)
LAMINA_CUDA_SUM(SoftmaxXentBody<std::int32_t>)
LAMINA_CUDA_SUM(MseBody)
LAMINA_CUDA_SUM(BceBody)
}  // namespace lamina::cuda
