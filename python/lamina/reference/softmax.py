"""Softmax, log-softmax and softmax cross-entropy, max-subtracted so that logits of +-1e30 or
a row of equal huge values stay finite."""
import numpy as np


def softmax(x, axis=-1, out=None):
    """x (any shape) -> y, same shape: exp(x - m) / sum(exp(x - m)) along axis, m = max."""
    if x.shape[axis] == 0:
        y = x.copy()
    else:
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        y = e / np.sum(e, axis=axis, keepdims=True)
    if out is not None:
        out[...] = y
        return out
    return y


def log_softmax(x, axis=-1, out=None):
    """x (any shape) -> y, same shape: (x - m) - log(sum(exp(x - m))) along axis."""
    if x.shape[axis] == 0:
        y = x.copy()
    else:
        z = x - np.max(x, axis=axis, keepdims=True)
        y = z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))
    if out is not None:
        out[...] = y
        return out
    return y


def softmax_backward(grad_y, y, axis=-1, out=None):
    """grad_y, y = softmax(x, axis) (same shape) -> grad_x, same shape:

        grad_x = y * (grad_y - sum(grad_y * y, axis, keepdims=True))

    (the Jacobian-vector product of softmax, diag(y) - y y^T, along axis).
    """
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):  # (as softmax: one axis, not None)
        raise TypeError(f"axis must be an int, got {axis!r}")
    if grad_y.shape != y.shape:
        raise ValueError(f"grad_y has shape {grad_y.shape} but y has shape {y.shape}; they must match")
    gx = y * (grad_y - np.sum(grad_y * y, axis=axis, keepdims=True))
    if out is not None:
        if out.shape != gx.shape:
            raise ValueError(f"out has shape {out.shape}, expected {gx.shape}")
        out[...] = gx
        return out
    return gx


def softmax_cross_entropy(logits, labels):
    """logits (N, K), labels (N,) integers in [0, K) -> (loss, grad_logits (N, K)).

    loss = -(1/N) sum_r log softmax(logits_r)[labels_r]   (NaN for N = 0)
    grad = (softmax(logits) - onehot(labels)) / N          = d loss / d logits
    """
    if logits.ndim != 2:
        raise ValueError(f"logits must be 2-D (N, K), got shape {logits.shape}")
    n, k = logits.shape
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"labels has shape {labels.shape}, expected ({n},)")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must have an integer dtype, got {labels.dtype}")
    bad = np.flatnonzero((labels < 0) | (labels >= k))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"labels[{i}] = {labels[i]} is out of range [0, {k})")
    if n == 0:
        return float("nan"), np.zeros_like(logits)
    rows = np.arange(n)
    logp = log_softmax(logits, axis=1)
    loss = -np.mean(logp[rows, labels])
    grad = np.exp(logp)
    grad[rows, labels] -= 1
    grad /= n
    return float(loss), grad
