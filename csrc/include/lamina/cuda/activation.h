// cuda/activation.h: the element-wise activations and their backward passes on the device
// (csrc/cuda/activation.cu), with the CPU kernels' arguments (lamina/activation.h).
// Same formulas as lamina.reference.activation: relu and leaky_relu differentiate from x,
// sigmoid and tanh from y. Arrays flat, contiguous, n elements; the output may be an input.
#pragma once
#include "lamina/cuda/common.h"

namespace lamina::cuda {

void relu(const float* x, float* y, index_t n);
void relu_backward(const float* grad_y, const float* x, float* grad_x, index_t n);
void sigmoid(const float* x, float* y, index_t n);
void sigmoid_backward(const float* grad_y, const float* y, float* grad_x, index_t n);
void tanh(const float* x, float* y, index_t n);
void tanh_backward(const float* grad_y, const float* y, float* grad_x, index_t n);
void leaky_relu(const float* x, float* y, index_t n, float slope);
void leaky_relu_backward(const float* grad_y, const float* x, float* grad_x, index_t n, float slope);

}  // namespace lamina::cuda
