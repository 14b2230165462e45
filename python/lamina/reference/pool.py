"""2-D max and average pooling, NCHW, forward and backward, written with sliding windows.

Geometry (both): kernel (kh, kw), stride (sh, sw) defaulting to the kernel, padding (ph, pw)
at most half the kernel; OH = (H + 2 ph - kh) // sh + 1, likewise OW (conv_output_shape).
Window (oh, ow) covers input rows oh*sh - ph + [0, kh) and columns ow*sw - pw + [0, kw).
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._geometry import _pair, conv_output_shape


def _geometry(H, W, kernel_size, stride, padding):
    kh, kw = _pair(kernel_size, "kernel_size")
    sh, sw = (kh, kw) if stride is None else _pair(stride, "stride")
    ph, pw = _pair(padding, "padding")
    if H < 1 or W < 1:
        raise ValueError(f"input must have nonzero height and width, got {(H, W)}")
    OH, OW = conv_output_shape((H, W), (kh, kw), (sh, sw), (ph, pw))
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(f"padding {(ph, pw)} must be at most half of kernel_size {(kh, kw)}")
    return kh, kw, sh, sw, ph, pw, OH, OW


def _windows(x, kh, kw, sh, sw, ph, pw, fill):
    """x (N, C, H, W) -> windows (N, C, OH, OW, kh, kw) of the input padded with `fill`."""
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    return sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """x (N, C, H, W) -> y, indices (N, C, OH, OW); indices = ih * W + iw within each plane.

    Padding is -inf. The index is the first maximum in row-major window order among the
    input cells (a window with a NaN gives NaN and the last NaN's index, as PyTorch does).
    """
    N, C, H, W = x.shape
    kh, kw, sh, sw, ph, pw, OH, OW = _geometry(H, W, kernel_size, stride, padding)
    win = _windows(x, kh, kw, sh, sw, ph, pw, -np.inf)[:, :, :OH, :OW].reshape(N, C, OH, OW, kh * kw)
    # input coordinates of every window cell: (OH, kh) rows, (OW, kw) columns
    ih = (np.arange(OH) * sh - ph)[:, None] + np.arange(kh)[None, :]
    iw = (np.arange(OW) * sw - pw)[:, None] + np.arange(kw)[None, :]
    inside = ((ih >= 0) & (ih < H))[:, None, :, None] & ((iw >= 0) & (iw < W))[None, :, None, :]
    flat = (ih[:, None, :, None] * W + iw[None, :, None, :]).reshape(OH, OW, kh * kw)
    inside = inside.reshape(OH, OW, kh * kw)
    y = win.max(axis=-1)
    first_max = np.argmax((win == y[..., None]) & inside, axis=-1)
    isnan = np.isnan(win)
    last_nan = kh * kw - 1 - np.argmax(isnan[..., ::-1], axis=-1)
    pos = np.where(isnan.any(axis=-1), last_nan, first_max)
    indices = np.take_along_axis(np.broadcast_to(flat, win.shape), pos[..., None], axis=-1)[..., 0]
    return y, indices.astype(np.int64)


def max_pool2d_backward(grad_y, indices, input_shape):
    """grad_y, indices (N, C, OH, OW) -> grad_x (N, C, H, W): grad_x[n, c].flat[idx] += grad_y."""
    N, C, H, W = input_shape
    if grad_y.shape != indices.shape or grad_y.shape[:2] != (N, C):
        raise ValueError(f"grad_y {grad_y.shape}, indices {indices.shape} and input_shape {input_shape} disagree")
    bad = np.flatnonzero((indices < 0) | (indices >= H * W))
    if bad.size:
        where = np.unravel_index(bad[0], indices.shape)
        raise ValueError(f"indices[{', '.join(map(str, where))}] = {indices[where]} is out of range [0, {H * W})")
    grad_x = np.zeros((N * C, H * W), dtype=grad_y.dtype)
    plane = np.repeat(np.arange(N * C), grad_y.shape[2] * grad_y.shape[3])
    np.add.at(grad_x, (plane, indices.reshape(-1)), grad_y.reshape(-1))
    return grad_x.reshape(N, C, H, W)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """x (N, C, H, W) -> y (N, C, OH, OW) = window sum / (kh * kw), padding counted as 0."""
    N, C, H, W = x.shape
    kh, kw, sh, sw, ph, pw, OH, OW = _geometry(H, W, kernel_size, stride, padding)
    win = _windows(x, kh, kw, sh, sw, ph, pw, 0)[:, :, :OH, :OW]
    return (win.sum(axis=(-2, -1)) / (kh * kw)).astype(x.dtype, copy=False)


def avg_pool2d_backward(grad_y, input_shape, kernel_size, stride=None, padding=0):
    """grad_y (N, C, OH, OW) -> grad_x (N, C, H, W): each window's input cells get grad_y / (kh kw)."""
    N, C, H, W = input_shape
    kh, kw, sh, sw, ph, pw, OH, OW = _geometry(H, W, kernel_size, stride, padding)
    if grad_y.shape != (N, C, OH, OW):
        raise ValueError(f"grad_y has shape {grad_y.shape}, expected {(N, C, OH, OW)}")
    g = grad_y / grad_y.dtype.type(kh * kw)
    grad_xp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=grad_y.dtype)
    for i in range(kh):  # cell (i, j) of every window at once
        for j in range(kw):
            grad_xp[:, :, i:i + sh * OH:sh, j:j + sw * OW:sw] += g
    return np.ascontiguousarray(grad_xp[:, :, ph:ph + H, pw:pw + W])
