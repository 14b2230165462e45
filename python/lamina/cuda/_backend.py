"""The "cuda" backend: every kernel of lamina.backend.KERNELS on lamina.cuda arrays, with the
signatures of lamina.reference (checked by tests/test_contract.py and tests/test_cuda.py).

The kernels are those of lamina._cuda (or of lamina._cuda_emu, the "cuda_emu" backend), named
as here and bound as they are: their bindings (csrc/bindings/bind_cuda_<family>.cpp) validate
lamina.cuda arrays as the native backend's validate NumPy arrays (the reference's errors:
TypeError / ValueError naming the argument), copy strided inputs where a kernel needs it,
allocate results from the pool and write `out` through a temporary where it overlaps an input;
this layer gives them the reference's signatures and docstrings and holds the array functions
and the interchange. Every launch is checked in C++: a failure is lamina.cuda.CudaError (a
RuntimeError) naming the kernel; exhausted device memory is MemoryError.
Results stay on the device; the losses, all_finite and dot return Python values (one copy back).
"""
from __future__ import annotations

import functools
import inspect

import numpy as np

from .. import backend as _backend
from .. import reference as _ref
from ._array import Array, c_strides, check_dtype

F32 = np.dtype(np.float32)
I64 = np.dtype(np.int64)
I32 = np.dtype(np.int32)
# The optional kernels (backend.OPTIONAL_KERNELS) this backend has, validated in C++ as well.
_OPTIONAL_IN_CPP = ("batch_norm", "batch_norm_backward", "lstm_cell", "lstm_cell_backward", "gru_cell",
                    "gru_cell_backward")


class CudaBackend:
    """The backend object: ``name``, ``device``, ``dtypes``, the four array functions and every
    kernel (attributes whose ``inspect.signature`` is the reference's)."""

    dtypes = (F32,)

    def __init__(self, rt, name, device=None):
        self.rt, self.k = rt, rt.k
        self.name = name
        self.device = device or rt.device
        for kname in _backend.KERNELS + _OPTIONAL_IN_CPP:
            setattr(self, kname, _with_reference_signature(kname, getattr(self.k, kname)))

    def __repr__(self):
        return f"<lamina backend {self.name!r} on {self.device}>"

    # -- the array functions ----------------------------------------------------------------
    def empty(self, shape, dtype=np.float32):
        return Array.empty(shape, dtype, self.rt)

    def zeros(self, shape, dtype=np.float32):
        return self.k.fill(Array.empty(shape, dtype, self.rt), 0)

    def asarray(self, x, dtype=None):
        """Host data or an array of this backend (no copy when already one of ``dtype``), or any
        object with ``__cuda_array_interface__`` (PyTorch, CuPy: viewed, no copy)."""
        if isinstance(x, Array) and x._rt is self.rt:
            if dtype is None or np.dtype(dtype) == x.dtype:
                return x
            return Array.from_numpy(x.numpy().astype(dtype), rt=self.rt)
        if not isinstance(x, np.ndarray) and hasattr(x, "__cuda_array_interface__"):
            a = _from_cai(self.rt, x)
            return a if dtype is None or np.dtype(dtype) == a.dtype else self.asarray(a, dtype)
        a = np.asarray(x)
        if dtype is None and a.dtype not in (F32, I32, I64, np.dtype(np.float64)):
            if np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_:
                a = a.astype(np.int64)
            elif np.issubdtype(a.dtype, np.floating):
                a = a.astype(np.float32)
        return Array.from_numpy(a, dtype=dtype, rt=self.rt)

    def to_numpy(self, a):
        if not isinstance(a, Array):
            raise TypeError(f"to_numpy takes a lamina.cuda.Array, got {type(a).__name__}")
        return a.numpy()


def _with_reference_signature(name, impl):
    """``impl`` exposed with lamina.reference.<name>'s signature (the contract's) and docstring."""
    ref_sig = inspect.signature(getattr(_ref, name))

    @functools.wraps(impl)
    def call(*args, **kwargs):
        return impl(*args, **kwargs)

    call.__signature__ = ref_sig
    call.__name__ = call.__qualname__ = name
    call.__doc__ = getattr(_ref, name).__doc__
    del call.__wrapped__
    return call


_LEGACY_STREAM = 1  # cudaStreamLegacy


class _Foreign:
    """The owner of an Array over another library's memory (``__cuda_array_interface__``): keeps
    the producer's object alive while lamina arrays view it, and when the last of them goes orders
    the producer's reuse of the memory after the work queued on lamina's stream so far, which may
    still read it: the producer's stream waits for lamina's where it is a default stream (1:
    legacy, 2: per-thread, always valid handles); a stream of its own, which may have been
    destroyed since, is not touched: the host waits for lamina's stream instead."""
    __slots__ = ("obj", "module", "stream")

    def __init__(self, obj, module, stream):
        self.obj, self.module, self.stream = obj, module, stream

    def __del__(self):
        if self.module is None:
            return
        if self.stream in (1, 2):
            self.module.stream_wait(self.stream)
        else:
            self.module.synchronize()


def _producer_stream(cai):
    """The stream the producer's work on the data is queued on: the published one (v3), the
    legacy default stream where none is published (v2, e.g. PyTorch's), None where the producer
    says no ordering is needed (v3 with ``stream: None``)."""
    if "stream" not in cai:
        return _LEGACY_STREAM
    stream = cai["stream"]
    if stream is None:
        return None
    if isinstance(stream, bool) or not isinstance(stream, int):
        raise TypeError(f"__cuda_array_interface__['stream'] must be an int or None, got {stream!r}")
    if stream == 0:
        raise ValueError("__cuda_array_interface__['stream'] is 0, which the interface disallows (ambiguous): "
                         "1 is the legacy default stream, 2 the per-thread default stream")
    return stream


def _from_cai(rt, obj):
    """A zero-copy Array over an object with __cuda_array_interface__ (v2/v3), kept alive.

    lamina's stream (non-blocking: it does not wait for the legacy default stream by itself)
    is ordered after the producer's stream before any kernel reads the data, and the producer's
    stream after lamina's when lamina lets the memory go."""
    cai = obj.__cuda_array_interface__
    dt = check_dtype(np.dtype(cai["typestr"]))
    shape = tuple(cai["shape"])
    ptr = cai["data"][0]
    strides = cai.get("strides")
    if strides is None:
        strides = c_strides(shape)
    else:
        if any(s % dt.itemsize for s in strides):
            raise ValueError("strides that are not multiples of the item size are not supported")
        strides = tuple(s // dt.itemsize for s in strides)
    stream = _producer_stream(cai)
    if stream is not None:
        rt.module.lamina_wait(stream)
    owner = _Foreign(obj, rt.module, stream if stream is not None else _LEGACY_STREAM)
    return Array(rt, owner, ptr, shape, strides, dt)
