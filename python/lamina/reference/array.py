"""The small array operations the model layer needs, so that layers, losses and optimisers never
apply NumPy to a backend array: fill, copy, transpose, add, scale, gather_rows, argmax,
all_finite, dot.

Any dtype the operation makes sense for (float32 / float64; the integer dtypes for copy,
transpose and gather_rows); results are in the input's dtype except argmax (int64), all_finite
(a Python bool) and dot (a Python float, accumulated in float64).
"""
import operator

import numpy as np


def _check_out(out, shape, dtype):
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"out must have dtype {dtype}, got {out.dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"out has shape {out.shape}, expected {tuple(shape)}")
    if not out.flags.writeable:
        raise ValueError("out is read-only (not writeable)")


def _same_shape(a, b, na, nb):
    if a.shape != b.shape:
        raise ValueError(f"{nb} has shape {b.shape} but {na} has shape {a.shape}; they must match")


def _put(y, out):
    if out is None:
        return y
    _check_out(out, y.shape, y.dtype)
    out[...] = y
    return out


def fill(x, value):
    """x (any shape) -> x, every element set to value, in place."""
    if not x.flags.writeable:
        raise ValueError("x is read-only (not writeable)")
    x[...] = value
    return x


def copy(x, out=None):
    """x (any shape, any strides) -> a C-contiguous copy, or x written into out (same shape and
    dtype, any strides: out may be a view such as W[:, :F])."""
    if out is None:
        return np.array(x, order="C", copy=True)
    _check_out(out, x.shape, x.dtype)
    out[...] = x  # NumPy copies through a temporary when x and out overlap
    return out


def _axes(axes, ndim):
    try:
        perm = tuple(operator.index(a) for a in axes)
    except TypeError:
        raise TypeError(f"axes must be a sequence of ints, got {axes!r}") from None
    if sorted(perm) != list(range(ndim)):
        raise ValueError(f"axes {axes!r} is not a permutation of range({ndim})")
    return perm


def transpose(x, axes, out=None):
    """x (d_0, ..., d_{n-1}) -> y (d_axes[0], ..., d_axes[n-1]), y[i] = x[i permuted back]:
    x.transpose(axes) materialised (C-contiguous when new; out any strides, as for copy)."""
    return copy(x.transpose(_axes(axes, x.ndim)), out)


def add(a, b, alpha=1.0, out=None):
    """a, b (same shape, no broadcasting) -> a + alpha * b. out may be a or b."""
    _same_shape(a, b, "a", "b")
    return _put(a + a.dtype.type(alpha) * b, out)


def scale(x, alpha, out=None):
    """x (any shape) -> alpha * x. out may be x."""
    return _put(x.dtype.type(alpha) * x, out)


def gather_rows(x, indices, out=None):
    """x (R, ...), indices (M,) int64 or int32 in [0, R) -> out (M, ...), out[i] = x[indices[i]]."""
    if not isinstance(indices, np.ndarray) or indices.dtype not in (np.int64, np.int32):
        got = indices.dtype if isinstance(indices, np.ndarray) else type(indices).__name__
        raise TypeError(f"indices must be a numpy.ndarray of int64 or int32, got {got}")
    if indices.ndim != 1:
        raise ValueError(f"indices must be 1-D, got shape {indices.shape}")
    if x.ndim < 1:
        raise ValueError("x must have at least 1 dimension")
    bad = np.flatnonzero((indices < 0) | (indices >= x.shape[0]))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"indices[{i}] = {int(indices[i])} is out of range [0, {x.shape[0]}) "
                         f"for x of shape {x.shape}")
    return _put(x[indices], out)


def argmax(x, axis=-1):
    """x (any shape, ndim >= 1) -> int64 array of x.shape without axis: the index of the first
    maximum along axis; a NaN counts as the maximum (the first NaN wins)."""
    if x.ndim < 1:
        raise ValueError("x must have at least 1 dimension")
    axis = operator.index(axis)
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis {axis} is out of range for x with {x.ndim} dimensions")
    if x.shape[axis] == 0:
        raise ValueError(f"argmax of an empty axis (x has shape {x.shape}, axis {axis})")
    return np.argmax(x, axis=axis).astype(np.int64)


def all_finite(x):
    """x (any shape) -> True when no element is NaN or +-inf (True for an empty x)."""
    return bool(np.isfinite(x).all())


def dot(a, b):
    """a, b (same shape) -> sum(a * b) over every element, accumulated in float64."""
    _same_shape(a, b, "a", "b")
    return float(np.dot(a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)))
