// pool.cu: max and average pooling, forward one thread per output; backward gathers per input
// cell, for max after a pass over the indices (bad ones flagged, the output ranges that name each
// input row and column noted), so no atomic adds and the CPU's bits.
#include "launch.cuh"
#include "lamina/cuda/pool.h"

namespace lamina::cuda {
LAMINA_CUDA_EACH(MaxPoolBody)
LAMINA_CUDA_EACH(MaxPoolRangesBody)
LAMINA_CUDA_EACH(MaxPoolBackwardBody)
LAMINA_CUDA_EACH(AvgPoolBody)
LAMINA_CUDA_EACH(AvgPoolBackwardBody)
}  // namespace lamina::cuda
