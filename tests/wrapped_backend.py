"""A backend defined outside lamina, standing in for a device backend in the tests.

Its arrays are ``Wrapped``: a box around a NumPy array that has only what the backend contract
lets the model layer use (``shape``, ``dtype``, ``ndim``, ``size``, ``reshape`` views, basic
slicing views, ``len``). It has no arithmetic operators, and ``__array__`` raises, so any
NumPy function or implicit conversion that the model layer applies to a backend array fails
loudly. Its kernels unwrap their arguments, run ``lamina.reference`` and wrap the results; it
does not subclass ``lamina.backend.Backend`` (the contract is duck-typed).
"""
from __future__ import annotations

import numpy as np

from lamina import backend as _backend
from lamina import reference as _ref


class ImplicitConversion(TypeError):
    pass


class Wrapped:
    __slots__ = ("_a",)
    __array_priority__ = 1000
    __array_ufunc__ = None  # numpy ufuncs refuse it (x * wrapped raises TypeError)
    __array_function__ = None

    def __init__(self, a):
        if not isinstance(a, np.ndarray):
            raise TypeError("Wrapped holds a numpy array")
        self._a = a

    # what the contract allows
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)

    def reshape(self, *shape):
        v = self._a.view()
        v.shape = shape[0] if len(shape) == 1 and isinstance(shape[0], tuple) else shape  # a view or an error
        return Wrapped(v)

    def __getitem__(self, key):
        keys = key if isinstance(key, tuple) else (key,)
        for k in keys:
            if not (isinstance(k, (int, np.integer, slice)) or k is Ellipsis):
                raise TypeError(f"Wrapped arrays allow basic slicing only, got {k!r}")
        return Wrapped(self._a[key])

    def __len__(self):
        return len(self._a)

    def __repr__(self):
        return f"Wrapped(shape={self.shape}, dtype={self.dtype})"

    # what it must not do
    def __array__(self, *args, **kwargs):
        raise ImplicitConversion("a Wrapped array was converted to NumPy implicitly")

    def __bool__(self):
        raise ImplicitConversion("a Wrapped array was used as a truth value")

    def __float__(self):
        raise ImplicitConversion("a Wrapped array was converted to float")

    def __iter__(self):
        raise ImplicitConversion("a Wrapped array was iterated in Python")

    def __setitem__(self, key, value):
        raise ImplicitConversion("a Wrapped array was assigned to with []")


def _unwrap(v):
    if isinstance(v, Wrapped):
        return v._a
    if isinstance(v, np.ndarray) and v.ndim > 0:
        raise TypeError("a host NumPy array was passed to a kernel of the wrapped backend")
    if isinstance(v, (tuple, list)):
        return type(v)(_unwrap(x) for x in v)
    return v


def _wrap(v):
    if isinstance(v, np.ndarray):
        return Wrapped(v) if v.ndim > 0 else v.item()
    if isinstance(v, tuple):
        return tuple(_wrap(x) for x in v)
    return v


def _kernel(name):
    fn = getattr(_ref, name, None)  # None until the reference has it: the call then fails

    def call(*args, **kwargs):
        out = kwargs.get("out")
        result = (fn or getattr(_ref, name))(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()})
        if out is not None and isinstance(result, np.ndarray) and result is _unwrap(out):
            return out
        return _wrap(result)

    call.__name__ = call.__qualname__ = name
    if fn is not None:
        call.__wrapped__ = fn  # inspect.signature follows it: the reference signature
    return call


class WrappedBackend:
    """Reference kernels on Wrapped arrays; float32 and float64."""

    device = "test:0"
    dtypes = (np.dtype(np.float32), np.dtype(np.float64))

    def __init__(self, name="wrapped"):
        self.name = name
        self.calls = {}
        for k in _backend.KERNELS:
            setattr(self, k, _kernel(k))

    def empty(self, shape, dtype):
        return Wrapped(np.empty(shape, dtype=dtype))

    def zeros(self, shape, dtype):
        return Wrapped(np.zeros(shape, dtype=dtype))

    def asarray(self, x, dtype=None):
        if isinstance(x, Wrapped):
            if dtype is None or np.dtype(dtype) == x.dtype:
                return x
            return Wrapped(x._a.astype(dtype))
        if not isinstance(x, np.ndarray):
            raise TypeError(f"asarray takes a NumPy array or a Wrapped array, got {type(x).__name__}")
        return Wrapped(np.array(x, dtype=dtype, order="C", copy=True))  # a "device" copy

    def to_numpy(self, a):
        if not isinstance(a, Wrapped):
            raise TypeError(f"to_numpy takes a Wrapped array, got {type(a).__name__}")
        return np.array(a._a, copy=True)


def register_with(name, kernels):
    """A new WrappedBackend called ``name`` that also has the optional ``kernels``
    (lamina.backend.OPTIONAL_KERNELS), registered; unregister it after use."""
    be = WrappedBackend(name)
    for k in kernels:
        setattr(be, k, _kernel(k))
    return _backend.register_backend(be)


def register(name="wrapped"):
    """The registered WrappedBackend called ``name`` (registered once)."""
    if name in _backend.available():
        return _backend.get_backend(name)
    return _backend.register_backend(WrappedBackend(name))
