"""Nearest-neighbour 2-D upsampling by an integer factor, NCHW, forward and backward.

    forward   x (N, C, H, W) -> y (N, C, s*H, s*W),   y[n, c, i, j] = x[n, c, i // s, j // s]
    backward  grad_y (N, C, s*H, s*W) -> grad_x (N, C, H, W), the sum of each s x s block
"""
import numpy as np

from ._geometry import _count


def _put(y, out):
    if out is None:
        return y
    if out.shape != y.shape:
        raise ValueError(f"out has shape {out.shape}, expected {y.shape}")
    out[...] = y
    return out


def upsample_nearest2d(x, scale, out=None):
    """x (N, C, H, W) -> y (N, C, s*H, s*W): every input cell repeated as an s x s block."""
    s = _count(scale, "scale")
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D (N, C, H, W), got shape {x.shape}")
    return _put(np.repeat(np.repeat(x, s, axis=2), s, axis=3), out)


def upsample_nearest2d_backward(grad_y, scale, out=None):
    """grad_y (N, C, s*H, s*W) -> grad_x (N, C, H, W): the sum of each s x s block."""
    s = _count(scale, "scale")
    if grad_y.ndim != 4:
        raise ValueError(f"grad_y must be 4-D (N, C, s*H, s*W), got shape {grad_y.shape}")
    N, C, SH, SW = grad_y.shape
    if SH % s or SW % s:
        raise ValueError(f"grad_y has shape {grad_y.shape}: its height and width must be "
                         f"multiples of scale {s}")
    gx = grad_y.reshape(N, C, SH // s, s, SW // s, s).sum(axis=(3, 5))
    return _put(gx, out)
