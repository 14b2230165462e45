// pool.cu: max and average pooling, forward one thread per output; backward: max scatters
// (atomic adds into a zeroed grad_x, bad indices flagged), avg gathers per input cell.
#include "launch.cuh"
#include "lamina/cuda/pool.h"

namespace lamina::cuda {
LAMINA_CUDA_EACH(MaxPoolBody)
LAMINA_CUDA_EACH(MaxPoolBackwardBody)
LAMINA_CUDA_EACH(AvgPoolBody)
LAMINA_CUDA_EACH(AvgPoolBackwardBody)
}  // namespace lamina::cuda
