"""2-D convolution (cross-correlation, as torch.nn.functional.conv2d) in plain NumPy.

Layout NCHW. For one image the convolution is a matrix product once the input is unrolled
("im2col"): every output position (oh, ow) gets a column holding the C*kH*kW input values its
kernel window covers, and then

    y[n] (O, OH*OW) = w (O, C*kH*kW) @ cols[n] (C*kH*kW, OH*OW) + b

The backward pass is two more products and the inverse of the unrolling ("col2im", which
*adds* every column entry back onto the input pixel it was copied from, because a pixel
appears in several windows):

    grad_b = sum of grad_y over n, oh, ow
    grad_w = sum_n grad_y[n] @ cols[n].T
    grad_cols[n] = w.T @ grad_y[n]  ->  col2im  ->  grad_x[n]

Output size per spatial dimension: OH = (H + 2*ph - dh*(kH - 1) - 1) // sh + 1
(_geometry.conv_output_shape).
Works in the input's precision (float32 or float64).
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._geometry import _pair, conv_output_shape


def _geometry(x, w, stride, padding, dilation):
    """Checks the arguments; returns (sh, sw), (ph, pw), (dh, dw), (OH, OW)."""
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D (N, C, H, W), got shape {x.shape}")
    if w.ndim != 4:
        raise ValueError(f"w must be 4-D (O, C, kH, kW), got shape {w.shape}")
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"w has {w.shape[1]} input channels but x has {x.shape[1]} "
                         f"(x shape {x.shape}, w shape {w.shape})")
    if w.shape[2] < 1 or w.shape[3] < 1:
        raise ValueError(f"w has an empty kernel (w shape {w.shape})")
    stride, padding, dilation = (_pair(stride, "stride"), _pair(padding, "padding"),
                                 _pair(dilation, "dilation"))
    out_hw = conv_output_shape(x.shape[2:], w.shape[2:], stride, padding, dilation)
    return stride, padding, dilation, out_hw


def im2col(x, kernel_size, stride, padding, dilation):
    """x (N, C, H, W) -> cols (N, OH, OW, C, kH, kW): each output position's input window.

    The windows are views into the zero-padded input (sliding_window_view); taking every
    dh-th element of a window is the dilation, every sh-th window the stride.
    """
    (kH, kW), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    windows = sliding_window_view(xp, (dh * (kH - 1) + 1, dw * (kW - 1) + 1), axis=(2, 3))
    windows = windows[:, :, ::sh, ::sw, ::dh, ::dw]  # (N, C, OH, OW, kH, kW), a view
    return windows.transpose(0, 2, 3, 1, 4, 5)


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, activation=None, out=None):
    """x (N, C, H, W), w (O, C, kH, kW), b (O,) or None -> y (N, O, OH, OW).

    y[n, o, oh, ow] = b[o] + sum_{c, i, j} w[o, c, i, j] * xpad[n, c, oh*sh + i*dh, ow*sw + j*dw]
    then ReLU when activation == "relu". Written into `out` (N, O, OH, OW) when given.
    """
    if activation not in (None, "relu"):
        raise ValueError(f"activation must be None or 'relu', got {activation!r}")
    stride, padding, dilation, (OH, OW) = _geometry(x, w, stride, padding, dilation)
    N, O = x.shape[0], w.shape[0]
    if b is not None and b.shape != (O,):
        raise ValueError(f"b must have shape ({O},), got {b.shape}")
    cols = im2col(x, w.shape[2:], stride, padding, dilation)          # (N, OH, OW, C, kH, kW)
    K = w.shape[1] * w.shape[2] * w.shape[3]                          # C*kH*kW
    cols = cols.reshape(N * OH * OW, K)                               # (N*OH*OW, C*kH*kW)
    y = cols @ w.reshape(O, K).T                                      # (N*OH*OW, O)
    if b is not None:
        y = y + b
    if activation == "relu":
        y = np.maximum(y, 0)
    y = y.reshape(N, OH, OW, O).transpose(0, 3, 1, 2)
    if out is None:
        return np.ascontiguousarray(y)
    if out.shape != y.shape:
        raise ValueError(f"out has shape {out.shape}, expected {y.shape}")
    out[...] = y
    return out


def conv2d_backward(x, w, grad_y, stride=1, padding=0, dilation=1, compute_grad_x=True):
    """x (N, C, H, W), w (O, C, kH, kW), grad_y (N, O, OH, OW) -> (grad_x, grad_w, grad_b).

    grad_b (O,) = sum of grad_y over n, oh, ow
    grad_w (O, C, kH, kW) = sum over n and output positions of grad_y * the input window
    grad_x (N, C, H, W): every output position sends grad_y * w back onto its window;
    None when compute_grad_x is False (a network's first layer does not need it).
    """
    stride, padding, dilation, (OH, OW) = _geometry(x, w, stride, padding, dilation)
    N, C, H, W = x.shape
    O, _, kH, kW = w.shape
    if grad_y.shape != (N, O, OH, OW):
        raise ValueError(f"grad_y must have shape {(N, O, OH, OW)}, got {grad_y.shape}")
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation

    grad_b = grad_y.sum(axis=(0, 2, 3))
    gy = grad_y.transpose(0, 2, 3, 1).reshape(N * OH * OW, O)         # one row per position
    cols = im2col(x, (kH, kW), stride, padding, dilation).reshape(N * OH * OW, C * kH * kW)
    grad_w = (gy.T @ cols).reshape(O, C, kH, kW)
    if not compute_grad_x:
        return None, grad_w, grad_b

    grad_cols = (gy @ w.reshape(O, C * kH * kW)).reshape(N, OH, OW, C, kH, kW)
    # col2im: kernel offset (i, j) of every window read xpad[:, :, oh*sh + i*dh, ow*sw + j*dw];
    # add each column entry back there (strided slices of distinct positions: no collisions
    # within one offset, and the loop over offsets accumulates the overlaps).
    grad_xp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=grad_cols.dtype)
    for i in range(kH):
        for j in range(kW):
            rows = slice(i * dh, i * dh + sh * (OH - 1) + 1, sh)
            cols_ = slice(j * dw, j * dw + sw * (OW - 1) + 1, sw)
            grad_xp[:, :, rows, cols_] += grad_cols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    grad_x = grad_xp[:, :, ph:ph + H, pw:pw + W]
    return np.ascontiguousarray(grad_x), grad_w, grad_b


def conv2d_backward_pooled(x, w, grad_pooled, indices, stride=1, padding=0, dilation=1):
    """(grad_w, grad_b) of conv2d when its output y (N, O, OH, OW) went into max_pool2d:
    grad_pooled and indices (N, O, PH, PW) as max_pool2d returned them for y. The same as
    ``conv2d_backward(x, w, max_pool2d_backward(grad_pooled, indices, y.shape),
    compute_grad_x=False)[1:]``, which is how it is computed here; the native kernel never
    forms that unpooled gradient."""
    from .pool import max_pool2d_backward

    _, _, _, (OH, OW) = _geometry(x, w, stride, padding, dilation)
    N, O = x.shape[0], w.shape[0]
    if grad_pooled.ndim != 4 or grad_pooled.shape[:2] != (N, O):
        raise ValueError(f"grad_pooled must have shape ({N}, {O}, PH, PW), got {grad_pooled.shape}")
    grad_y = max_pool2d_backward(grad_pooled, indices, (N, O, OH, OW))
    _, grad_w, grad_b = conv2d_backward(x, w, grad_y, stride, padding, dilation, compute_grad_x=False)
    return grad_w, grad_b
