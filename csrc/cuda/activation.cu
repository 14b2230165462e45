// activation.cu: relu, sigmoid, tanh, leaky_relu and their backward passes, add and scale:
// one grid-stride launch of the bodies in lamina/cuda/activation.h.
#include "launch.cuh"
#include "lamina/cuda/activation.h"

namespace lamina::cuda {
LAMINA_CUDA_EACH(ActBody)
LAMINA_CUDA_EACH(AxpyBody)
}  // namespace lamina::cuda
