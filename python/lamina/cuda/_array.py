"""lamina.cuda.Array: an n-dimensional view of device memory (float32, float64, int32, int64).

An Array is (owner, address of element 0, shape, element strides, dtype) over a runtime: the
GPU (memory from lamina's caching stream-ordered pool, copies on lamina's stream) or the CUDA
emulator (lamina._cuda_emu, the "cuda_emu" backend: EmuArray). It has what the backend contract lets the model
layer use: ``shape``, ``dtype``, ``ndim``, ``size``, ``reshape`` views, basic slicing views and
``len``; plus ``numpy()`` / ``from_numpy``, ``__cuda_array_interface__`` (v3, with lamina's
stream) and ``__dlpack__`` / ``__dlpack_device__``, so PyTorch and CuPy view it
without a copy. It has no arithmetic, and implicit conversion to NumPy raises (copies to the
host are explicit: ``numpy()``, or the backend's ``to_numpy``).
"""
from __future__ import annotations

import math
import operator

import numpy as np

DTYPES = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int32), np.dtype(np.int64))
_DLPACK_CODE = {"f": 2, "i": 0, "u": 1}  # kDLFloat, kDLInt, kDLUInt


def check_dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in DTYPES:
        raise TypeError(f"lamina.cuda arrays hold float32, float64, int32 or int64, not {dt}")
    return dt


def c_strides(shape):
    st, s = [], 1
    for d in reversed(shape):
        st.append(s)
        s *= d
    return tuple(reversed(st))


class Array:
    __slots__ = ("_owner", "_ptr", "shape", "strides", "dtype", "_rt")
    __array_priority__ = 1000
    __array_ufunc__ = None  # NumPy ufuncs refuse it

    def __init__(self, rt, owner, ptr, shape, strides, dtype):
        self._rt = rt
        self._owner = owner
        self._ptr = int(ptr)
        self.shape = tuple(int(s) for s in shape)
        self.strides = tuple(int(s) for s in strides)  # in elements
        self.dtype = dtype

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def empty(cls, shape, dtype=np.float32, rt=None):
        rt = rt if rt is not None else _device_runtime()
        dt = check_dtype(dtype)
        shape = _shape(shape)
        nbytes = math.prod(shape) * dt.itemsize
        buf = rt.alloc(nbytes)
        return rt.array_type(rt, buf, buf.ptr, shape, c_strides(shape), dt)

    @classmethod
    def from_numpy(cls, a, dtype=None, rt=None):
        """A new device array holding a copy of host data ``a``."""
        a = np.asarray(a, dtype=dtype, order="C")  # (np.ascontiguousarray would make a 0-d array 1-d)
        out = cls.empty(a.shape, a.dtype, rt)
        out._rt.h2d(out._ptr, a)
        return out

    def numpy(self):
        """A new host NumPy array with the values (synchronises)."""
        src = self if self.is_contiguous() else self._rt.backend().copy(self)
        out = np.empty(self.shape, self.dtype)
        self._rt.d2h(out, src._ptr)
        return out

    # -- what the contract allows ---------------------------------------------------------
    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return math.prod(self.shape)

    @property
    def itemsize(self):
        return self.dtype.itemsize

    @property
    def nbytes(self):
        return self.size * self.dtype.itemsize

    @property
    def ptr(self):
        """The device address of element 0."""
        return self._ptr

    @property
    def device(self):
        return self._rt.device

    def is_contiguous(self):
        if self.size <= 1:
            return True
        expect = 1
        for d, s in zip(reversed(self.shape), reversed(self.strides)):
            if d != 1 and s != expect:
                return False
            expect *= d
        return True

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def reshape(self, *shape):
        """A view with another shape (one dimension may be -1); the array must be C-contiguous
        (else ValueError: the model layer's reshapes are all of contiguous arrays)."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        shape = [operator.index(s) for s in shape]
        if shape.count(-1) > 1:
            raise ValueError("can only specify one unknown dimension")
        if -1 in shape:
            known = math.prod(s for s in shape if s != -1)
            if known == 0 or self.size % known:
                raise ValueError(f"cannot reshape array of size {self.size} into shape {tuple(shape)}")
            shape[shape.index(-1)] = self.size // known
        if any(s < 0 for s in shape) or math.prod(shape) != self.size:
            raise ValueError(f"cannot reshape array of size {self.size} into shape {tuple(shape)}")
        if not self.is_contiguous():
            raise ValueError(f"cannot reshape a non-contiguous view (shape {self.shape}, strides {self.strides}) "
                             "without a copy; copy it first (backend.copy)")
        return type(self)(self._rt, self._owner, self._ptr, shape, c_strides(shape), self.dtype)

    def __getitem__(self, key):
        keys = key if isinstance(key, tuple) else (key,)
        if sum(k is Ellipsis for k in keys) > 1:
            raise IndexError("an index can only have a single ellipsis ('...')")
        n_real = sum(1 for k in keys if k is not Ellipsis and k is not None)
        if n_real > self.ndim:
            raise IndexError(f"too many indices for array: array is {self.ndim}-dimensional, but {n_real} were indexed")
        expanded = []
        for k in keys:
            if k is Ellipsis:
                expanded.extend([slice(None)] * (self.ndim - n_real))
            else:
                expanded.append(k)
        expanded.extend([slice(None)] * (self.ndim - sum(1 for k in expanded if k is not None)))
        ptr, shape, strides, d = self._ptr, [], [], 0
        for k in expanded:
            if k is None:
                shape.append(1)
                strides.append(0)
                continue
            n, st = self.shape[d], self.strides[d]
            if isinstance(k, slice):
                start, stop, step = k.indices(n)
                length = len(range(start, stop, step))
                if length > 0:
                    ptr += start * st * self.itemsize
                shape.append(length)
                strides.append(st * step)
            elif isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_)):
                i = operator.index(k)
                if not -n <= i < n:
                    raise IndexError(f"index {i} is out of bounds for axis {d} with size {n}")
                ptr += (i % n) * st * self.itemsize
            else:
                raise TypeError(f"lamina.cuda arrays allow basic slicing only (ints, slices, ..., None), got {k!r}")
            d += 1
        return type(self)(self._rt, self._owner, ptr, shape, strides, self.dtype)

    # -- interchange ----------------------------------------------------------------------
    @property
    def __cuda_array_interface__(self):
        return {
            "shape": self.shape,
            "typestr": self.dtype.str,
            "data": (self._ptr if self.size else 0, False),
            "version": 3,
            "strides": None if self.is_contiguous() else tuple(s * self.itemsize for s in self.strides),
            "stream": self._rt.stream(),
        }

    def __dlpack_device__(self):
        return (2, self._rt.module.device_id())  # kDLCUDA

    def __dlpack__(self, stream=None, max_version=None, dl_device=None, copy=None):
        """A DLPack capsule viewing this array. ``stream`` is the consumer's (an int; None or 1:
        the legacy default stream, 2: per-thread default, -1: no ordering; 0 is disallowed): it
        is made to wait for the work queued on lamina's stream, so it reads finished values, and
        when the consumer releases the tensor lamina's stream waits for it before the memory is
        freed or reused. ``dl_device`` must be this array's device (no copies)."""
        if copy:
            raise BufferError("lamina.cuda arrays export without copies only (copy=True is not supported)")
        if dl_device is not None:
            want = self.__dlpack_device__()
            if tuple(dl_device) != want:
                raise BufferError(f"dl_device {tuple(dl_device)} is not this array's device {want}; "
                                  "lamina.cuda arrays export without copies only")
        if stream is None:
            stream = 1  # cudaStreamLegacy
        elif isinstance(stream, bool) or not isinstance(stream, int):
            raise TypeError(f"stream must be an int (a cudaStream_t, 1, 2 or -1) or None, got {stream!r}")
        elif stream == 0:
            raise ValueError("stream 0 is disallowed by DLPack (ambiguous): pass 1 for the legacy default stream, "
                             "2 for the per-thread default stream")
        if stream != -1:
            self._rt.stream_wait(stream)
        k = self.dtype.kind
        return self._rt.module.to_dlpack(self, self._ptr, list(self.shape), list(self.strides), _DLPACK_CODE[k],
                                         self.itemsize * 8, stream, self._rt.module.device_id())

    # -- what it must not do --------------------------------------------------------------
    def __array__(self, *args, **kwargs):
        raise TypeError("a lamina.cuda.Array is not converted to NumPy implicitly: use .numpy() or "
                        "the backend's to_numpy()")

    def __iter__(self):
        raise TypeError("iterating a lamina.cuda.Array in Python is not supported (use .numpy())")

    def __bool__(self):
        raise TypeError("the truth value of a lamina.cuda.Array is ambiguous")

    def __repr__(self):
        return f"lamina.cuda.Array(shape={self.shape}, dtype={self.dtype}, device={self._rt.device!r})"


def _shape(shape):
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    shape = tuple(operator.index(s) for s in shape)
    if any(s < 0 for s in shape):
        raise ValueError(f"negative dimensions are not allowed: {shape}")
    return shape


_default_runtime = None  # the function giving the GPU's runtime, set by lamina.cuda._runtime


def set_default_runtime(fn):
    """Sets the function whose runtime Arrays made without one use (the GPU's)."""
    global _default_runtime
    _default_runtime = fn


def _device_runtime():
    if _default_runtime is None:
        raise RuntimeError("no CUDA runtime: use lamina.cuda (lamina.cuda.Array, lamina.cuda.backend())")
    return _default_runtime()


class EmuArray(Array):
    """An Array of the CUDA emulator's runtime (lamina._cuda_emu): its own type, so that
    backend_of tells the "cuda_emu" backend's arrays from the "cuda" backend's."""
    __slots__ = ()
