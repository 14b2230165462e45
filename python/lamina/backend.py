"""Backends: a backend is a namespace of kernels with one contract (issue 3's names).

``get_backend("native")`` holds the C++ kernels of ``lamina.ops``; ``get_backend("numpy")``
holds their NumPy twins from ``lamina.reference`` (any float dtype, used for float64
gradient checks). Layers, losses and optimisers call kernels only through a backend:

    be = lamina.backend.current()
    y = be.conv2d(x, w, b, stride=1, padding=2)

The default is "native"; change it with ``lamina.set_backend(name)`` or temporarily with
``with lamina.use_backend("numpy"): ...``. A layer or model can also be pinned to one with
``model.to("numpy")``.
"""
from __future__ import annotations

import contextlib
import inspect
import re

# Every kernel a backend provides (issue 3's contract plus the foundation's GEMM).
KERNELS = (
    "matmul", "linear",
    "conv2d", "conv2d_backward",
    "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
    "relu", "relu_backward", "sigmoid", "sigmoid_backward", "tanh", "tanh_backward",
    "leaky_relu", "leaky_relu_backward",
    "softmax", "log_softmax",
    "softmax_cross_entropy", "mse", "binary_cross_entropy",
    "dropout", "dropout_backward",
    "sgd_step",
)


def _param_names(fn) -> frozenset:
    """The keyword names a kernel takes (pybind functions state them in their __doc__)."""
    try:
        return frozenset(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        head = (getattr(fn, "__doc__", None) or "").split("\n", 1)[0]
        inside = head[head.find("(") + 1: head.rfind(")")] if "(" in head else ""
        return frozenset(re.findall(r"(\w+)\s*:", inside))


class Backend:
    """A namespace of kernels. Attributes are the kernel functions themselves (one attribute
    lookup per call on the hot path); ``dtypes`` lists the float dtypes its kernels accept;
    ``accepts_out`` names the kernels that can write into a caller's buffer (layers then reuse
    their buffers); ``accepts(kernel, keyword)`` tells about any other optional keyword."""

    def __init__(self, name, kernels, dtypes):
        self.name = name
        self.dtypes = tuple(dtypes)
        self.kernels = dict(kernels)
        self.params = {k: _param_names(f) for k, f in self.kernels.items()}
        self.accepts_out = frozenset(k for k, ps in self.params.items() if "out" in ps)
        for k, f in self.kernels.items():
            setattr(self, k, f)

    def accepts(self, kernel: str, keyword: str) -> bool:
        return keyword in self.params.get(kernel, ())

    def __getattr__(self, name):  # only reached for kernels this backend lacks
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(f"backend {self.__dict__.get('name', '?')!r} has no kernel {name!r}")

    def supports(self, dtype) -> bool:
        import numpy as np
        return np.dtype(dtype) in self.dtypes

    def __repr__(self):
        return f"<lamina backend {self.name!r}>"


_cache: dict[str, Backend] = {}


def _build(name: str) -> Backend:
    import numpy as np

    from . import ops, reference

    if name == "numpy":
        table = {k: getattr(reference, k) for k in KERNELS if hasattr(reference, k)}
        return Backend("numpy", table, (np.float32, np.float64))
    if name == "native":
        table = {k: getattr(ops, k) for k in KERNELS if hasattr(ops, k)}
        return Backend("native", table, (np.float32,))
    raise ValueError(f"unknown backend {name!r}; expected 'native' or 'numpy'")


def get_backend(name: str | Backend | None = None) -> Backend:
    """The backend called ``name`` ("native" or "numpy"), or the current default for None."""
    if name is None:
        return current()
    if isinstance(name, Backend):
        return name
    be = _cache.get(name)
    if be is None:
        be = _cache[name] = _build(name)
    return be


_default: Backend | None = None


def current() -> Backend:
    """The default backend (native unless changed by set_backend / use_backend)."""
    return _default if _default is not None else set_backend("native")


def set_backend(name: str | Backend) -> Backend:
    """Make ``name`` the default backend; returns it."""
    global _default
    _default = get_backend(name)
    return _default


@contextlib.contextmanager
def use_backend(name: str | Backend):
    """``with use_backend("numpy"): ...`` runs the block with another default backend."""
    global _default
    before = _default
    be = set_backend(name)
    try:
        yield be
    finally:
        _default = before
