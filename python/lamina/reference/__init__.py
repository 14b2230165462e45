"""The NumPy reference backend: every kernel written plainly, to be read like the equations.

It is the oracle the native kernels (``lamina.ops``) are tested against and the baseline the
benchmarks compare with; it is also usable as a backend of its own. Functions have the same
names, arguments and return values as their ``lamina.ops`` twins, accept float32 or float64
and compute in the input's precision (float64 for finite-difference gradient checks).
One module per kernel family; this package re-exports them all.
"""
from .gemm import linear, matmul  # noqa: F401
from .conv import conv2d, conv2d_backward  # noqa: F401
