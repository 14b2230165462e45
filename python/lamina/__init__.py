"""lamina: a deep-learning library whose hot kernels are its own C++ (SIMD + OpenMP) and CUDA.

The CPU path (generic, avx2 or avx512) is chosen once at import; set ``LAMINA_CPU`` to force a
lower one. ``lamina.ops`` holds the native kernels, ``lamina.reference`` their NumPy twins.
"""
from . import _native
from ._native import get_num_threads, set_num_threads

__version__ = _native.__version__


def backend_info() -> dict:
    """The CPU path in use, thread count, OpenMP/CUDA availability, compiler and build type."""
    return _native.backend_info()


from . import ops, reference  # noqa: E402  (after the native module is loaded)

__all__ = ["__version__", "backend_info", "get_num_threads", "set_num_threads", "ops", "reference"]
