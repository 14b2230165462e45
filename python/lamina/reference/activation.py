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
    return _store(np.maximum(x, x.dtype.type(0)), out)  # (a typed 0: NumPy 1.x would promote a 0-d x)


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
    one = y.dtype.type(1)  # typed constants keep a 0-d float32 in float32 under NumPy 1.x too
    return _store(grad_y * y * (one - y), out)


def tanh(x, out=None):
    """x (any shape) -> y = tanh(x)."""
    return _store(np.tanh(x), out)


def tanh_backward(grad_y, y, out=None):
    """grad_y, y = tanh(x) (same shape) -> grad_x = grad_y * (1 - y**2)."""
    one = y.dtype.type(1)
    return _store(grad_y * (one - y * y), out)


def leaky_relu(x, slope=0.01, out=None):
    """x (any shape) -> y = x if x > 0 else slope * x."""
    slope = x.dtype.type(slope)
    return _store(np.where(x > 0, x, x * slope), out)


def leaky_relu_backward(grad_y, x, slope=0.01, out=None):
    """grad_y, x (same shape) -> grad_x = grad_y * (1 if x > 0 else slope)."""
    slope = grad_y.dtype.type(slope)
    return _store(np.where(x > 0, grad_y, grad_y * slope), out)
