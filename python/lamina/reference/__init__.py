"""The NumPy reference backend: every kernel written plainly, to be read like the equations.

It is the oracle the native kernels (``lamina.ops``) are tested against and the baseline the
benchmarks compare with; it is also usable as a backend of its own. Functions have the same
names, arguments and return values as their ``lamina.ops`` twins, accept float32 or float64
and compute in the input's precision (float64 for finite-difference gradient checks).
One module per kernel family; this package re-exports them all.
"""
from .gemm import linear, matmul  # noqa: F401
from .activation import leaky_relu, leaky_relu_backward, relu, relu_backward, sigmoid, sigmoid_backward, tanh, tanh_backward  # noqa: F401,E501
from .softmax import log_softmax, softmax, softmax_backward, softmax_cross_entropy  # noqa: F401
from .loss import binary_cross_entropy, mse  # noqa: F401
from .dropout import dropout, dropout_backward  # noqa: F401
from .sgd import adam_step, sgd_step  # noqa: F401
from .pool import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward  # noqa: F401
from .conv import conv2d, conv2d_backward, conv2d_backward_pooled  # noqa: F401
from .upsample import upsample_nearest2d, upsample_nearest2d_backward  # noqa: F401
from .norm import batch_norm, batch_norm_backward  # noqa: F401
from .rnn_cell import gru_cell, gru_cell_backward, lstm_cell, lstm_cell_backward  # noqa: F401
from .array import add, all_finite, argmax, copy, dot, fill, gather_rows, scale, transpose  # noqa: F401
from ._geometry import conv_output_shape, pair  # noqa: F401
