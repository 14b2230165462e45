// upsample.cu: nearest-neighbour upsampling, forward (one thread per output) and backward
// (one thread per input cell, summing its block: no atomics).
#include "launch.cuh"
#include "lamina/cuda/upsample.h"

namespace lamina::cuda {
LAMINA_CUDA_EACH(UpsampleBody)
LAMINA_CUDA_EACH(UpsampleBackwardBody)
}  // namespace lamina::cuda
