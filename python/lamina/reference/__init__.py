"""The NumPy reference backend: every kernel written plainly, to be read like the equations.

It is the oracle the native kernels (``lamina.ops``) are tested against and the baseline the
benchmarks compare with; it is also usable as a backend of its own. Functions have the same
names, arguments and return values as their ``lamina.ops`` twins, accept float32 or float64
and compute in the input's precision (float64 for finite-difference gradient checks).
One module per kernel family; this package re-exports them all.
"""
from .gemm import linear, matmul  # noqa: F401

# TEMPORARY: the model layer's stand-ins for the issue-3 reference kernels (remove when
# issue-3 kernels merge; their own reference modules replace this line).
from ._pending import (  # noqa: F401,E402
    avg_pool2d, avg_pool2d_backward, binary_cross_entropy, conv2d, conv2d_backward, dropout,
    dropout_backward, leaky_relu, leaky_relu_backward, log_softmax, max_pool2d,
    max_pool2d_backward, mse, relu, relu_backward, sgd_step, sigmoid, sigmoid_backward, softmax,
    softmax_cross_entropy, tanh, tanh_backward,
)
