"""Native CPU kernels (``lamina._native``): same names and semantics as ``lamina.reference``.

All take float32 NumPy arrays, validate them (TypeError / ValueError naming the argument),
release the GIL while computing, and return new arrays unless ``out=`` is given.
One line per kernel family below.
"""
from ._native import linear, matmul  # noqa: F401
from ._native import conv2d, conv2d_backward  # noqa: F401
