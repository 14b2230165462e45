// cuda/norm.h: batch normalisation over the channel axis on the device (csrc/cuda/norm.cu), with
// the CPU kernels' arguments (lamina/norm.h) and the formulas of lamina.reference.norm. x is
// viewed as (N, C, S), S the product of the spatial sizes (1 for (N, C) input); per channel c the
// statistics run over its n = N * S values.
//   batch_norm:          training: batch mean and biased variance (per-thread Welford merged in
//                        double, never E[x^2] - E[x]^2), running_mean / running_var (may be null)
//                        <- (1 - momentum) running + momentum (mean, var n / (n - 1)); evaluation:
//                        the running statistics. y = (x - mean) invstd weight + bias (weight / bias
//                        null: 1 / 0); mean and invstd (C) written for the backward.
//   batch_norm_backward: grad_bias = sum g, grad_weight = sum g xhat, grad_x = weight invstd
//                        (g - grad_bias / n - xhat grad_weight / n) (training) or weight invstd g.
// Arrays contiguous; y / grad_x may be x itself (each channel is read before it is written) but
// overlap no other input.
#pragma once
#include "lamina/cuda/common.h"

namespace lamina::cuda {

void batch_norm(const float* x, const float* weight, const float* bias, float* running_mean, float* running_var,
                float* y, float* mean, float* invstd, index_t N, index_t C, index_t S, bool training,
                double momentum, double eps);
void batch_norm_backward(const float* grad_y, const float* x, const float* weight, const float* mean,
                         const float* invstd, float* grad_x, float* grad_weight, float* grad_bias, index_t N,
                         index_t C, index_t S, bool training);

}  // namespace lamina::cuda
