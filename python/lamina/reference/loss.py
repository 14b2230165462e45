"""Losses with their gradients: the quadratic cost and binary cross-entropy."""
import numpy as np


def mse(pred, target):
    """pred a, target y: same shape (n, ...) with n the number of examples -> (C, dC/da).

    C = 1/(2n) sum_x ||y(x) - a(x)||^2   (the sum runs over every element; the mean is over
    examples only, the convention of the quadratic cost), dC/da = (a - y) / n.
    """
    if pred.shape != target.shape:
        raise ValueError(f"target has shape {target.shape} but pred has shape {pred.shape}")
    if pred.ndim == 0 or pred.shape[0] == 0:
        raise ValueError(f"pred must have at least one example along its first dimension, got {pred.shape}")
    n = pred.shape[0]
    d = pred - target
    return float(np.sum(d.astype(np.float64) * d) / (2 * n)), d / pred.dtype.type(n)


def binary_cross_entropy(prob, target, eps=1e-7):
    """prob p, target t: same shape (any) -> (loss, dloss/dp), loss a mean over all elements.

    pc = clip(p, eps, 1 - eps)       (so p of exactly 0 or 1 gives a finite loss)
    loss = -mean[t log pc + (1 - t) log(1 - pc)]
    grad = (pc - t) / (pc (1 - pc)) / size    (the derivative of the formula at pc)
    """
    if prob.shape != target.shape:
        raise ValueError(f"target has shape {target.shape} but prob has shape {prob.shape}")
    if not 0 < eps < 0.5:
        raise ValueError(f"eps must be in (0, 0.5), got {eps}")
    if prob.size == 0:
        return float("nan"), np.zeros_like(prob)
    dt = prob.dtype.type
    pc = np.clip(prob, dt(eps), dt(1.0 - eps))
    terms = target * np.log(pc) + (1 - target) * np.log1p(-pc)
    loss = -np.sum(terms, dtype=np.float64) / prob.size
    grad = (pc - target) / (pc * (1 - pc)) / dt(prob.size)
    return float(loss), grad
