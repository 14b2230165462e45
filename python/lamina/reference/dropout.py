"""Inverted dropout with a counter-based generator, bit-identical to the native kernel.

Element i of a flat array is kept when (h_i >> 32) >= ceil(p * 2**32), where
    h_i = mix64(key + i * G),  key = mix64(seed + G),  G = 0x9E3779B97F4A7C15,
and mix64 is splitmix64's finaliser. The decision depends only on (seed, i).
"""
import math

import numpy as np

_MASK64 = (1 << 64) - 1
_G = 0x9E3779B97F4A7C15


def _mix64_int(z):
    z &= _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _mix64(z):
    """splitmix64's finaliser on a uint64 array (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _check_p(p):
    if not 0 <= p < 1:
        raise ValueError(f"p must be in [0, 1), got {p!r}")


def dropout_mask(shape, p, seed):
    """The 0/1 keep mask (float32) of an array of `shape` for dropout probability p."""
    _check_p(p)
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed!r}")
    n = math.prod(shape)
    key = np.uint64(_mix64_int(seed + _G))
    i = np.arange(n, dtype=np.uint64)
    h = _mix64(key + i * np.uint64(_G))
    threshold = np.uint64(math.ceil(p * 2.0**32))
    return ((h >> np.uint64(32)) >= threshold).astype(np.float32).reshape(shape)


def dropout(x, p, seed):
    """x (any shape) -> (y, mask): mask of 0/1 (float32), y = x * mask / (1 - p)."""
    mask = dropout_mask(x.shape, p, seed)
    scale = x.dtype.type(1.0 / (1.0 - p))
    return x * mask.astype(x.dtype) * scale, mask


def dropout_backward(grad_y, mask, p):
    """grad_y, mask (same shape) -> grad_x = grad_y * mask / (1 - p)."""
    _check_p(p)
    scale = grad_y.dtype.type(1.0 / (1.0 - p))
    return grad_y * mask.astype(grad_y.dtype) * scale
