// sgd.cu: the SGD and Adam updates of lamina/cuda/sgd.h, one thread per element.
#include "launch.cuh"
#include "lamina/cuda/sgd.h"

namespace lamina::cuda {
LAMINA_CUDA_EACH(SgdBody)
LAMINA_CUDA_EACH(AdamBody)
}  // namespace lamina::cuda
