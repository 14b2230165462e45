// norm.h: batch normalisation over the channel axis, float32, x viewed as (N, C, S) with S the
// product of the spatial sizes (1 for (N, C) input). Per channel c, over its n = N * S values:
//
//   forward, training:   mean, var = batch mean and biased variance (deviations about the mean,
//                        merged per chunk in double: never E[x^2] - E[x]^2), invstd = 1/sqrt(var+eps);
//                        running_mean/var (may be null) <- (1-m) running + m (mean, var n/(n-1))
//   forward, evaluation: mean = running_mean, invstd = 1/sqrt(running_var + eps)
//                        y = (x - mean) invstd weight + bias   (weight / bias null: 1 / 0)
//                        mean and invstd (C) are written for the backward.
//   backward:            grad_bias = sum g, grad_weight = sum g xhat, and
//                        grad_x = weight invstd (g - grad_bias/n - xhat grad_weight/n)  (training)
//                        grad_x = weight invstd g                                         (evaluation)
// All arrays contiguous, y / grad_x not overlapping their inputs. Parallel over channels.
#pragma once
#include "lamina/common.h"

namespace lamina::cpu {
void batch_norm(const float* x, const float* weight, const float* bias, float* running_mean, float* running_var,
                float* y, float* mean, float* invstd, index_t N, index_t C, index_t S, bool training,
                double momentum, double eps);
void batch_norm_backward(const float* grad_y, const float* x, const float* weight, const float* mean,
                         const float* invstd, float* grad_x, float* grad_weight, float* grad_bias, index_t N,
                         index_t C, index_t S, bool training);
}  // namespace lamina::cpu
