"""Native CPU kernels (``lamina._native``): same names and semantics as ``lamina.reference``.

All take float32 NumPy arrays, validate them (TypeError / ValueError naming the argument),
release the GIL while computing, and return new arrays unless ``out=`` is given.
One line per kernel family below.
"""
from ._native import linear, matmul  # noqa: F401
from ._native import leaky_relu, leaky_relu_backward, relu, relu_backward, sigmoid, sigmoid_backward, tanh, tanh_backward  # noqa: F401,E501
from ._native import log_softmax, softmax, softmax_backward, softmax_cross_entropy  # noqa: F401
from ._native import binary_cross_entropy, mse  # noqa: F401
from ._native import dropout, dropout_backward  # noqa: F401
from ._native import adam_step, sgd_step  # noqa: F401
from ._native import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward  # noqa: F401
from ._native import conv2d, conv2d_backward, conv2d_backward_pooled  # noqa: F401
from ._native import upsample_nearest2d, upsample_nearest2d_backward  # noqa: F401
from ._native import batch_norm, batch_norm_backward  # noqa: F401
from ._native import gru_cell, gru_cell_backward, lstm_cell, lstm_cell_backward  # noqa: F401
from ._native import add, all_finite, argmax, copy, dot, fill, gather_rows, scale, transpose  # noqa: F401
