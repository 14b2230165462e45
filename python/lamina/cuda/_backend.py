"""The "cuda" backend: every kernel of lamina.backend.KERNELS on lamina.cuda arrays, with the
signatures of lamina.reference (checked by tests/test_contract.py and tests/test_cuda.py).

This layer validates (the reference's errors: TypeError / ValueError naming the argument),
makes strided inputs contiguous where a kernel needs it, allocates outputs from the pool and
calls the kernels of lamina._cuda (or of lamina._cuda_emu, the "cuda_emu" backend), named as
here, with device addresses; it does no arithmetic on the data. Every launch is checked in C++: a failure is
lamina.cuda.CudaError (a RuntimeError) naming the kernel; exhausted device memory is MemoryError.
Results stay on the device; the losses, all_finite and dot return Python values (one copy back).
"""
from __future__ import annotations

import functools
import inspect
import math
import operator

import numpy as np

from .. import backend as _backend
from .. import reference as _ref
from ._array import Array, c_strides, check_dtype

F32 = np.dtype(np.float32)
I64 = np.dtype(np.int64)
I32 = np.dtype(np.int32)
# Kernels whose bindings validate their arguments themselves (csrc/bindings/bind_cuda_<family>.cpp,
# as the native backend's): bound as they are.
_VALIDATED_IN_CPP = ("relu", "relu_backward", "sigmoid", "sigmoid_backward", "tanh", "tanh_backward",
                     "leaky_relu", "leaky_relu_backward",
                     "fill", "copy", "transpose", "add", "scale", "gather_rows", "argmax", "all_finite", "dot",
                     "softmax", "log_softmax", "softmax_backward", "softmax_cross_entropy",
                     "mse", "binary_cross_entropy", "dropout", "dropout_backward",
                     "sgd_step", "adam_step",
                     "upsample_nearest2d", "upsample_nearest2d_backward",
                     "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
                     "conv2d", "conv2d_backward")
# The optional kernels (backend.OPTIONAL_KERNELS) this backend has, validated in C++ as well.
_OPTIONAL_IN_CPP = ("batch_norm", "batch_norm_backward", "lstm_cell", "lstm_cell_backward", "gru_cell",
                    "gru_cell_backward")
_EXTRA = {"sgd_step": ("param_out", "velocity_out"), "adam_step": ("param_out", "m_out", "v_out")}


class CudaBackend:
    """The backend object: ``name``, ``device``, ``dtypes``, the four array functions and every
    kernel (attributes whose ``inspect.signature`` is the reference's)."""

    dtypes = (F32,)

    def __init__(self, rt, name, device=None):
        self.rt, self.k = rt, rt.k
        self.name = name
        self.device = device or rt.device
        self._tf32 = None
        for kname in _backend.KERNELS + _OPTIONAL_IN_CPP:
            if kname in _VALIDATED_IN_CPP or kname in _OPTIONAL_IN_CPP:
                impl = getattr(self.k, kname)
            else:
                impl = getattr(self, "_" + kname)
            setattr(self, kname, _with_reference_signature(kname, impl))

    def __repr__(self):
        return f"<lamina backend {self.name!r} on {self.device}>"

    # -- the array functions ----------------------------------------------------------------
    def empty(self, shape, dtype=np.float32):
        return Array.empty(shape, dtype, self.rt)

    def zeros(self, shape, dtype=np.float32):
        return self.k.fill(Array.empty(shape, dtype, self.rt), 0)

    def asarray(self, x, dtype=None):
        """Host data or an array of this backend (no copy when already one of ``dtype``); on the
        GPU also any object with ``__cuda_array_interface__`` (PyTorch, CuPy: viewed, no copy)."""
        if isinstance(x, Array) and x._rt is self.rt:
            if dtype is None or np.dtype(dtype) == x.dtype:
                return x
            return Array.from_numpy(x.numpy().astype(dtype), rt=self.rt)
        if not isinstance(x, np.ndarray) and self.rt.is_device and hasattr(x, "__cuda_array_interface__"):
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

    # -- helpers ----------------------------------------------------------------------------
    def _arr(self, a, name, dtype=F32):
        if not isinstance(a, Array) or a._rt is not self.rt:
            what = type(a).__name__ if not isinstance(a, Array) else f"an array of {a.device}"
            raise TypeError(f"{name} must be a lamina.cuda.Array on {self.device}, got {what} "
                            f"(move host data with backend.asarray)")
        if dtype is not None and a.dtype != dtype:
            raise TypeError(f"{name} must be {dtype}, got {a.dtype}")
        return a

    def _c(self, a, name, dtype=F32):
        """``a`` validated and C-contiguous (a copy when it is a strided view)."""
        a = self._arr(a, name, dtype)
        return a if a.is_contiguous() else self._copy(a)

    def _new(self, shape, dtype=F32):
        return Array.empty(shape, dtype, self.rt)

    def _out(self, out, shape, dtype=F32, inputs=(), elementwise=False):
        """(array to write, finish): ``out`` itself when it is a contiguous array of ``shape`` that
        overlaps no input, else a temporary copied into ``out`` by finish(). An element-wise
        kernel (``elementwise``: element i of the result reads only element i of each input) may
        also write ``out`` when it is exactly an input (the same elements): the native backend's
        rule. Any other kernel (a GEMM, a gather, a convolution, a row-wise softmax) reads inputs
        after writing outputs, so any overlap goes through the temporary."""
        shape = tuple(shape)
        if out is None:
            return self._new(shape, dtype), None
        self._arr(out, "out", None)
        if out.dtype != dtype:
            raise TypeError(f"out must have dtype {dtype}, got {out.dtype}")
        if out.shape != shape:
            raise ValueError(f"out has shape {out.shape}, expected {shape}")
        clash = _partly_overlap if elementwise else _overlap
        if out.is_contiguous() and not any(clash(out, a) for a in inputs):
            return out, None
        return self._new(shape, dtype), out

    def _finish(self, result, target):
        if target is None:
            return result
        self._copy(result, out=target)
        return target

    def _copy(self, x, out=None):
        """x (any strides) -> a C-contiguous copy, or into out (any strides)."""
        return self.k.copy(x, out)

    def _sync_tf32(self):
        from . import allow_tf32
        if allow_tf32 is not self._tf32 and self.rt.is_device:
            self.rt.module.set_allow_tf32(bool(allow_tf32))
            self._tf32 = allow_tf32

    def _matrix(self, a, name):
        """(array, leading dimension) of a 2-D float32 operand: a row-strided view is used as
        it is, any other layout copied."""
        a = self._arr(a, name)
        if a.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got shape {a.shape}")
        if a.strides[1] == 1 and a.strides[0] >= max(a.shape[1], 1):
            return a, a.strides[0]
        if a.is_contiguous():
            return a, max(a.shape[1], 1)
        a = self._copy(a)
        return a, max(a.shape[1], 1)

    # -- GEMM -------------------------------------------------------------------------------
    def _matmul(self, a, b, trans_a=False, trans_b=False, out=None):
        a, lda = self._matrix(a, "a")
        b, ldb = self._matrix(b, "b")
        M, K = (a.shape[1], a.shape[0]) if trans_a else a.shape
        K2, N = (b.shape[1], b.shape[0]) if trans_b else b.shape
        if K != K2:
            raise ValueError(f"matmul: op(a) is {(M, K)} but op(b) is {(K2, N)}: inner dimensions differ")
        c, target = self._out(out, (M, N), F32, (a, b))
        self._sync_tf32()
        self.k.matmul(a._ptr, lda, bool(trans_a), b._ptr, ldb, bool(trans_b), c._ptr, M, N, K)
        return self._finish(c, target)

    def _linear(self, x, w, b=None, activation=None, out=None):
        if activation not in (None, "relu"):
            raise ValueError(f"activation must be None or 'relu', got {activation!r}")
        x, ldx = self._matrix(x, "x")
        w, ldw = self._matrix(w, "w")
        n, k = x.shape
        o, k2 = w.shape
        if k != k2:
            raise ValueError(f"x has {k} features but w has {k2} (x {x.shape}, w {w.shape})")
        if b is not None:
            b = self._c(b, "b")
            if b.shape != (o,):
                raise ValueError(f"b must have shape ({o},), got {b.shape}")
        y, target = self._out(out, (n, o), F32, (x, w) + ((b,) if b is not None else ()))
        self._sync_tf32()
        self.k.linear(x._ptr, ldx, w._ptr, ldw, b._ptr if b is not None else 0, activation == "relu", y._ptr, n, o, k)
        return self._finish(y, target)


def _with_reference_signature(name, impl):
    """``impl`` exposed with lamina.reference.<name>'s signature (the contract's), taking also
    the keyword-only extras of _EXTRA (the optimisers' *_out arrays)."""
    ref_sig = inspect.signature(getattr(_ref, name))

    @functools.wraps(impl)
    def call(*args, **kwargs):
        return impl(*args, **kwargs)

    call.__signature__ = ref_sig
    call.__name__ = call.__qualname__ = name
    call.__doc__ = getattr(_ref, name).__doc__
    del call.__wrapped__
    return call


def _extent(a):
    """[lo, hi) bytes spanned by a."""
    if a.size == 0:
        return a._ptr, a._ptr
    lo = hi = a._ptr
    for d, s in zip(a.shape, a.strides):
        span = (d - 1) * s * a.itemsize
        if span < 0:
            lo += span
        else:
            hi += span
    return lo, hi + a.itemsize


def _overlap(a, b):
    if a._owner is not b._owner:
        return False
    (l1, h1), (l2, h2) = _extent(a), _extent(b)
    return l1 < h2 and l2 < h1


def _partly_overlap(out, a):
    """Overlapping, and not exactly the same elements (an element-wise kernel may write an input)."""
    return _overlap(out, a) and not (out._ptr == a._ptr and out.shape == a.shape and out.strides == a.strides)


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
