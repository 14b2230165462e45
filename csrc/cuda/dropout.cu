// dropout.cu: the counter-based mask of lamina/cuda/dropout.h, one thread per element.
#include "launch.cuh"
#include "lamina/cuda/dropout.h"

namespace lamina::cuda {
LAMINA_CUDA_EACH(DropoutBody)
LAMINA_CUDA_EACH(DropoutBackwardBody)
}  // namespace lamina::cuda
