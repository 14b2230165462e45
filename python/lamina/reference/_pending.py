"""TEMPORARY NumPy twins of the issue-3 kernels, written for the model layer's development.

The issue-3 engineers write the official reference (``lamina/reference/<family>.py``); at
merge this file is replaced by theirs and the import line in ``reference/__init__.py`` goes.
Names, arguments and return values follow issue 3 exactly (plus ``activation=`` on conv2d).
Self-contained: only NumPy. Layout NCHW. Every function computes in its input's precision
(float32 or float64) and returns C-contiguous arrays.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _pair(v, name):
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair, got {v!r}")
        a, b = int(v[0]), int(v[1])
    else:
        a = b = int(v)
    return a, b


def _conv_geometry(x_shape, w_shape, stride, padding, dilation):
    N, C, H, W = x_shape
    O, Cw, kH, kW = w_shape
    if C != Cw:
        raise ValueError(f"w has {Cw} input channels but x has {C} (x shape {x_shape}, w shape {w_shape})")
    sh, sw = _pair(stride, "stride")
    ph, pw = _pair(padding, "padding")
    dh, dw = _pair(dilation, "dilation")
    if sh < 1 or sw < 1:
        raise ValueError(f"stride must be >= 1, got {stride!r}")
    if ph < 0 or pw < 0:
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    if dh < 1 or dw < 1:
        raise ValueError(f"dilation must be >= 1, got {dilation!r}")
    ekh, ekw = dh * (kH - 1) + 1, dw * (kW - 1) + 1
    if ekh > H + 2 * ph or ekw > W + 2 * pw:
        raise ValueError(f"kernel ({kH}, {kW}) is larger than the padded input ({H + 2 * ph}, {W + 2 * pw})")
    OH = (H + 2 * ph - ekh) // sh + 1
    OW = (W + 2 * pw - ekw) // sw + 1
    return (N, C, H, W, O, kH, kW, sh, sw, ph, pw, dh, dw, OH, OW)


def _windows(xp, kH, kW, sh, sw, dh, dw, OH, OW):
    """xp (N, C, Hp, Wp) -> view (N, C, OH, OW, kH, kW) of the receptive fields."""
    ekh, ekw = dh * (kH - 1) + 1, dw * (kW - 1) + 1
    win = sliding_window_view(xp, (ekh, ekw), axis=(2, 3))  # (N, C, Hp-ekh+1, Wp-ekw+1, ekh, ekw)
    return win[:, :, ::sh, ::sw, ::dh, ::dw][:, :, :OH, :OW]


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, activation=None):
    """x (N, C, H, W), w (O, C, kH, kW), b (O,) -> y (N, O, OH, OW); cross-correlation.

    y[n, o, i, j] = b[o] + sum_{c, p, q} x_pad[n, c, i*sh + p*dh, j*sw + q*dw] w[o, c, p, q],
    then ReLU when activation == "relu".
    """
    if activation not in (None, "relu"):
        raise ValueError(f"activation must be None or 'relu', got {activation!r}")
    N, C, H, W, O, kH, kW, sh, sw, ph, pw, dh, dw, OH, OW = _conv_geometry(x.shape, w.shape, stride, padding, dilation)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if (ph or pw) else x
    cols = _windows(xp, kH, kW, sh, sw, dh, dw, OH, OW)  # (N, C, OH, OW, kH, kW)
    # (N, OH, OW, C*kH*kW) @ (C*kH*kW, O) -> (N, OH, OW, O)
    cols = cols.transpose(0, 2, 3, 1, 4, 5).reshape(N * OH * OW, C * kH * kW)
    y = cols @ w.reshape(O, -1).T
    if b is not None:
        y += b
    if activation == "relu":
        np.maximum(y, 0, out=y)
    return np.ascontiguousarray(y.reshape(N, OH, OW, O).transpose(0, 3, 1, 2))


def conv2d_backward(x, w, grad_y, stride=1, padding=0, dilation=1):
    """x (N, C, H, W), w (O, C, kH, kW), grad_y (N, O, OH, OW) -> (grad_x, grad_w, grad_b).

    grad_w[o, c, p, q] = sum_{n, i, j} grad_y[n, o, i, j] x_pad[n, c, i*sh + p*dh, j*sw + q*dw]
    grad_x = col2im(grad_y^T w), grad_b[o] = sum_{n, i, j} grad_y[n, o, i, j].
    """
    N, C, H, W, O, kH, kW, sh, sw, ph, pw, dh, dw, OH, OW = _conv_geometry(x.shape, w.shape, stride, padding, dilation)
    if grad_y.shape != (N, O, OH, OW):
        raise ValueError(f"grad_y has shape {grad_y.shape}, expected {(N, O, OH, OW)}")
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if (ph or pw) else x
    cols = _windows(xp, kH, kW, sh, sw, dh, dw, OH, OW)  # (N, C, OH, OW, kH, kW)
    gy = grad_y.transpose(0, 2, 3, 1).reshape(N * OH * OW, O)  # (N*OH*OW, O)
    cols2 = cols.transpose(0, 2, 3, 1, 4, 5).reshape(N * OH * OW, C * kH * kW)
    grad_w = (gy.T @ cols2).reshape(O, C, kH, kW)
    grad_b = grad_y.sum(axis=(0, 2, 3))
    # d cols (N, OH, OW, C, kH, kW), scattered back onto the padded input.
    dcols = (gy @ w.reshape(O, -1)).reshape(N, OH, OW, C, kH, kW)
    gxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=x.dtype)
    for p in range(kH):
        for q in range(kW):
            r0, c0 = p * dh, q * dw
            gxp[:, :, r0:r0 + sh * (OH - 1) + 1:sh, c0:c0 + sw * (OW - 1) + 1:sw] += \
                dcols[:, :, :, :, p, q].transpose(0, 3, 1, 2)
    grad_x = gxp[:, :, ph:ph + H, pw:pw + W]
    return np.ascontiguousarray(grad_x), np.ascontiguousarray(grad_w), np.ascontiguousarray(grad_b)


def _pool_geometry(x_shape, kernel_size, stride, padding):
    N, C, H, W = x_shape
    kH, kW = _pair(kernel_size, "kernel_size")
    sh, sw = _pair(kernel_size if stride is None else stride, "stride")
    ph, pw = _pair(padding, "padding")
    if kH < 1 or kW < 1 or sh < 1 or sw < 1:
        raise ValueError("kernel_size and stride must be >= 1")
    if ph < 0 or pw < 0 or ph > kH // 2 or pw > kW // 2:
        raise ValueError(f"padding must be between 0 and half the kernel size, got {padding!r}")
    if kH > H + 2 * ph or kW > W + 2 * pw:
        raise ValueError(f"kernel_size ({kH}, {kW}) is larger than the padded input ({H + 2 * ph}, {W + 2 * pw})")
    OH = (H + 2 * ph - kH) // sh + 1
    OW = (W + 2 * pw - kW) // sw + 1
    return N, C, H, W, kH, kW, sh, sw, ph, pw, OH, OW


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """x (N, C, H, W) -> (y (N, C, OH, OW), indices (N, C, OH, OW) int64).

    indices hold the flat position h*W + w of each maximum inside its (H, W) plane; padding
    counts as -inf; ties go to the first maximum in row-major window order.
    """
    N, C, H, W, kH, kW, sh, sw, ph, pw, OH, OW = _pool_geometry(x.shape, kernel_size, stride, padding)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf) if (ph or pw) else x
    win = _windows(xp, kH, kW, sh, sw, 1, 1, OH, OW).reshape(N, C, OH, OW, kH * kW)
    arg = win.argmax(axis=-1)  # first maximum in row-major order
    y = np.take_along_axis(win, arg[..., None], axis=-1)[..., 0]
    r = np.arange(OH)[:, None] * sh + arg // kW - ph  # (N, C, OH, OW) row in the unpadded input
    c = np.arange(OW)[None, :] * sw + arg % kW - pw
    return np.ascontiguousarray(y), (r * W + c).astype(np.int64)


def max_pool2d_backward(grad_y, indices, input_shape):
    """grad_y, indices (N, C, OH, OW) -> grad_x of input_shape (N, C, H, W): each output's
    gradient goes to the input position that held its maximum (summed where windows overlap)."""
    N, C, H, W = input_shape
    if indices.shape != grad_y.shape:
        raise ValueError(f"indices has shape {indices.shape}, expected grad_y's {grad_y.shape}")
    grad_x = np.zeros((N * C, H * W), dtype=grad_y.dtype)
    rows = np.repeat(np.arange(N * C), grad_y[0, 0].size)
    np.add.at(grad_x, (rows, indices.reshape(-1)), grad_y.reshape(-1))
    return grad_x.reshape(N, C, H, W)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """x (N, C, H, W) -> y (N, C, OH, OW): window means, padding counted in the divisor."""
    N, C, H, W, kH, kW, sh, sw, ph, pw, OH, OW = _pool_geometry(x.shape, kernel_size, stride, padding)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if (ph or pw) else x
    win = _windows(xp, kH, kW, sh, sw, 1, 1, OH, OW)
    return np.ascontiguousarray(win.sum(axis=(-2, -1)) / (kH * kW)).astype(x.dtype, copy=False)


def avg_pool2d_backward(grad_y, input_shape, kernel_size, stride=None, padding=0):
    """grad_y (N, C, OH, OW) -> grad_x (N, C, H, W): each output's gradient spread evenly
    over its kH*kW window (the padded part of the window is dropped)."""
    N, C, H, W, kH, kW, sh, sw, ph, pw, OH, OW = _pool_geometry(input_shape, kernel_size, stride, padding)
    if grad_y.shape != (N, C, OH, OW):
        raise ValueError(f"grad_y has shape {grad_y.shape}, expected {(N, C, OH, OW)}")
    gxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=grad_y.dtype)
    g = grad_y / (kH * kW)
    for p in range(kH):
        for q in range(kW):
            gxp[:, :, p:p + sh * (OH - 1) + 1:sh, q:q + sw * (OW - 1) + 1:sw] += g
    return np.ascontiguousarray(gxp[:, :, ph:ph + H, pw:pw + W])


def relu(x):
    """y = max(x, 0), any shape."""
    return np.maximum(x, 0)


def relu_backward(grad_y, x):
    """grad_x = grad_y where x > 0, else 0."""
    return np.where(x > 0, grad_y, 0).astype(grad_y.dtype, copy=False)


def leaky_relu(x, slope=0.01):
    """y = x for x > 0, slope * x otherwise."""
    return np.where(x > 0, x, x * slope).astype(x.dtype, copy=False)


def leaky_relu_backward(grad_y, x, slope=0.01):
    """grad_x = grad_y for x > 0, slope * grad_y otherwise."""
    return np.where(x > 0, grad_y, grad_y * slope).astype(grad_y.dtype, copy=False)


def sigmoid(x):
    """y = 1 / (1 + exp(-x)), computed without overflow for large |x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def sigmoid_backward(grad_y, y):
    """grad_x = grad_y * y (1 - y), from the forward's output y."""
    return grad_y * y * (1 - y)


def tanh(x):
    return np.tanh(x)


def tanh_backward(grad_y, y):
    """grad_x = grad_y (1 - y^2), from the forward's output y."""
    return grad_y * (1 - y * y)


def softmax(x, axis=-1):
    """exp(x - max) / sum exp(x - max) along axis."""
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def _check_labels(labels, N, K):
    labels = np.asarray(labels)
    if labels.shape != (N,):
        raise ValueError(f"labels has shape {labels.shape}, expected ({N},)")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must be an integer array, got {labels.dtype}")
    bad = np.flatnonzero((labels < 0) | (labels >= K))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"labels[{i}] = {int(labels[i])} is out of range [0, {K})")
    return labels


def softmax_cross_entropy(logits, labels):
    """logits (N, K), labels int (N,) -> (loss, grad_logits (N, K)).

    loss = -1/N sum_n log softmax(logits_n)[labels_n];  grad = (softmax - onehot) / N.
    """
    N, K = logits.shape
    labels = _check_labels(labels, N, K)
    ls = log_softmax(logits, axis=1)
    rows = np.arange(N)
    loss = -ls[rows, labels].sum() / N if N else 0.0
    grad = np.exp(ls)
    grad[rows, labels] -= 1
    grad /= max(N, 1)
    return float(loss), grad.astype(logits.dtype, copy=False)


def mse(pred, target):
    """pred, target (N, ...) -> (loss, grad): C = 1/(2N) sum ||target - pred||^2, grad = (pred - target)/N."""
    if pred.shape != target.shape:
        raise ValueError(f"target has shape {target.shape}, expected pred's {pred.shape}")
    n = pred.shape[0] if pred.ndim else 1
    d = pred - target
    return float((d * d).sum() / (2 * n)), (d / n).astype(pred.dtype, copy=False)


def binary_cross_entropy(prob, target):
    """prob, target (any shape, equal) -> (loss, grad); mean over all elements.

    loss = -mean(t log p + (1 - t) log(1 - p)), p clamped to [eps, 1 - eps] so 0 and 1 stay finite.
    """
    if prob.shape != target.shape:
        raise ValueError(f"target has shape {target.shape}, expected prob's {prob.shape}")
    eps = 1e-7 if prob.dtype == np.float32 else 1e-12
    p = np.clip(prob, eps, 1 - eps)
    n = max(prob.size, 1)
    loss = -(target * np.log(p) + (1 - target) * np.log(1 - p)).sum() / n
    grad = (p - target) / (p * (1 - p)) / n
    return float(loss), grad.astype(prob.dtype, copy=False)


def dropout(x, p, seed):
    """x (any shape) -> (y, mask): inverted dropout, mask = 0 or 1/(1-p) in x's dtype, y = x * mask."""
    if not 0 <= p < 1:
        raise ValueError(f"p must be in [0, 1), got {p!r}")
    keep = np.random.default_rng(int(seed)).random(x.shape) >= p
    mask = keep.astype(x.dtype) / x.dtype.type(1 - p)
    return x * mask, mask


def dropout_backward(grad_y, mask, p):
    """grad_x = grad_y * mask."""
    if mask.shape != grad_y.shape:
        raise ValueError(f"mask has shape {mask.shape}, expected grad_y's {grad_y.shape}")
    return grad_y * mask


def sgd_step(param, grad, lr, velocity=None, momentum=0.0, weight_decay=0.0, nesterov=False):
    """In place, PyTorch's SGD (dampening 0): g = grad + wd*param; v = momentum*v + g;
    step = g + momentum*v (nesterov) or v; param -= lr*step. velocity starts at zero."""
    if grad.shape != param.shape:
        raise ValueError(f"grad has shape {grad.shape}, expected param's {param.shape}")
    g = grad + weight_decay * param if weight_decay else grad
    if momentum:
        if velocity is None:
            raise ValueError("velocity is required when momentum != 0")
        velocity *= momentum
        velocity += g
        g = g + momentum * velocity if nesterov else velocity
    param -= lr * g
    return param
