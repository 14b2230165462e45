"""Activations and their backward passes, element-wise on arrays of any shape.

The backward functions take the upstream gradient grad_y = dC/dy and return dC/dx. relu and
leaky_relu differentiate from the input x; sigmoid and tanh from their output y (both
derivatives are cheap functions of y, so the forward output is what a layer saves).
"""
import numpy as np


def _store(z, out):
    if out is None:
        return z
    out[...] = z
    return out


def relu(x, out=None):
    """x (any shape) -> y = max(x, 0), same shape. NaN propagates."""
    return _store(np.maximum(x, 0), out)


def relu_backward(grad_y, x, out=None):
    """grad_y, x (same shape) -> grad_x = grad_y * [x > 0]."""
    return _store(np.where(x > 0, grad_y, 0).astype(grad_y.dtype, copy=False), out)


def sigmoid(x, out=None):
    """x (any shape) -> y = 1 / (1 + exp(-x)), computed without overflow for either sign."""
    e = np.exp(-np.abs(x))  # in (0, 1]
    y = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
    return _store(y.astype(x.dtype, copy=False), out)


def sigmoid_backward(grad_y, y, out=None):
    """grad_y, y = sigmoid(x) (same shape) -> grad_x = grad_y * y * (1 - y)."""
    return _store(grad_y * y * (1 - y), out)


def tanh(x, out=None):
    """x (any shape) -> y = tanh(x)."""
    return _store(np.tanh(x), out)


def tanh_backward(grad_y, y, out=None):
    """grad_y, y = tanh(x) (same shape) -> grad_x = grad_y * (1 - y**2)."""
    return _store(grad_y * (1 - y * y), out)


def leaky_relu(x, slope=0.01, out=None):
    """x (any shape) -> y = x if x > 0 else slope * x."""
    slope = x.dtype.type(slope)
    return _store(np.where(x > 0, x, x * slope), out)


def leaky_relu_backward(grad_y, x, slope=0.01, out=None):
    """grad_y, x (same shape) -> grad_x = grad_y * (1 if x > 0 else slope)."""
    slope = grad_y.dtype.type(slope)
    return _store(np.where(x > 0, grad_y, grad_y * slope), out)
