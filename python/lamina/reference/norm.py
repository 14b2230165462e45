"""Batch normalisation over the channel axis, forward and backward (PyTorch's F.batch_norm).

x has shape (N, C, *): (N, C) for BatchNorm1D, (N, C, H, W) for BatchNorm2D. Every statistic is
per channel c, over the n = N * prod(*) values x[:, c, ...]:

    training:    mean = (1/n) sum x,  var = (1/n) sum (x - mean)^2          (biased)
                 running_mean = (1 - momentum) running_mean + momentum mean
                 running_var  = (1 - momentum) running_var  + momentum var n / (n - 1)  (unbiased)
    evaluation:  mean = running_mean,  var = running_var
    invstd = 1 / sqrt(var + eps),  xhat = (x - mean) invstd,  y = weight xhat + bias

The forward returns (y, mean, invstd): the statistics it normalised with, which the backward
takes. The variance is formed from the deviations about the mean (two passes), never as
E[x^2] - E[x]^2. Backward, with g = dC/dy and the sums over the same n values:

    grad_bias   = sum g,   grad_weight = sum g xhat
    training:   grad_x = weight invstd (g - grad_bias / n - xhat grad_weight / n)
    evaluation: grad_x = weight invstd g          (mean and invstd are constants)
"""
import numpy as np


def _channels(x, name="x"):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must have dtype float32 or float64, got {x.dtype}")
    if x.ndim < 2:
        raise ValueError(f"{name} must have at least 2 dimensions (N, C, ...), got shape {x.shape}")
    return x.shape[1]


def _per_channel(a, name, C, dtype=None):
    if a is None:
        return None
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray or None, got {type(a).__name__}")
    if a.shape != (C,):
        raise ValueError(f"{name} must have shape ({C},) (one value per channel), got {a.shape}")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype}, got {a.dtype}")
    return a


def _flag(v, name):
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(v).__name__}")
    return bool(v)


def _bshape(x):
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _axes(x):
    return (0,) + tuple(range(2, x.ndim))


def check_batch_norm_args(x, running_mean, running_var, weight, bias, training, momentum, eps):
    """The arguments of batch_norm checked (shared by every backend written in Python);
    returns (C, training, momentum, eps)."""
    C = _channels(x)
    _per_channel(running_mean, "running_mean", C, x.dtype)
    _per_channel(running_var, "running_var", C, x.dtype)
    _per_channel(weight, "weight", C, x.dtype)
    _per_channel(bias, "bias", C, x.dtype)
    training = _flag(training, "training")
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must be given together (or both None)")
    if not training and running_mean is None:
        raise ValueError("running_mean and running_var are required when training=False")
    if isinstance(momentum, (bool, np.bool_)) or not isinstance(momentum, (int, float, np.floating, np.integer)):
        raise TypeError(f"momentum must be a real number, got {type(momentum).__name__}")
    if not 0.0 <= float(momentum) <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum!r}")
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, (int, float, np.floating, np.integer)):
        raise TypeError(f"eps must be a real number, got {type(eps).__name__}")
    if not (0.0 <= float(eps) < np.inf):
        raise ValueError(f"eps must be finite and >= 0, got {eps!r}")
    if training and x.size // max(C, 1) < 2 and C > 0:
        raise ValueError(f"training needs more than 1 value per channel, got x of shape {x.shape}")
    return C, training, float(momentum), float(eps)


def batch_norm(x, running_mean=None, running_var=None, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, out=None):
    """x (N, C, *) -> (y like x, mean (C,), invstd (C,)); see the module docstring. running_mean
    and running_var (C,) are updated in place when training and given; weight / bias (C,)
    default to ones / zeros. ``out``: where y goes (x's shape and dtype)."""
    C, training, momentum, eps = check_batch_norm_args(x, running_mean, running_var, weight, bias,
                                                       training, momentum, eps)
    dt = x.dtype
    shape = _bshape(x)
    if training:
        n = x.size // C
        mean = x.mean(axis=_axes(x), dtype=np.float64)
        var = np.square(x - mean.reshape(shape).astype(dt), dtype=np.float64).mean(axis=_axes(x))
        if running_mean is not None:
            running_mean[...] = (1.0 - momentum) * running_mean + momentum * mean
            running_var[...] = (1.0 - momentum) * running_var + momentum * var * (n / (n - 1))
        mean, var = mean.astype(dt), var.astype(dt)
    else:
        mean, var = running_mean.copy(), running_var
    invstd = (1.0 / np.sqrt(var.astype(np.float64) + eps)).astype(dt)
    y = (x - mean.reshape(shape)) * invstd.reshape(shape)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    y = y.astype(dt, copy=False)
    if out is not None:
        if out.shape != x.shape or out.dtype != dt:
            raise ValueError(f"out must have x's shape {x.shape} and dtype {dt}, got {out.shape} {out.dtype}")
        out[...] = y
        y = out
    return y, mean, invstd


def batch_norm_backward(grad_y, x, weight, mean, invstd, training=False):
    """(grad_x like x, grad_weight (C,), grad_bias (C,)) from grad_y (x's shape), the forward's
    x, weight (None: ones) and the (mean, invstd) it returned; ``training`` as in that forward
    (then mean and invstd are functions of x)."""
    C = _channels(x)
    if not isinstance(grad_y, np.ndarray) or grad_y.shape != x.shape:
        raise ValueError(f"grad_y must have x's shape {x.shape}, got {getattr(grad_y, 'shape', type(grad_y))}")
    _per_channel(weight, "weight", C, x.dtype)
    _per_channel(mean, "mean", C, x.dtype)
    _per_channel(invstd, "invstd", C, x.dtype)
    if mean is None or invstd is None:
        raise ValueError("mean and invstd (the forward's statistics) are required")
    training = _flag(training, "training")
    shape, axes = _bshape(x), _axes(x)
    xhat = (x - mean.reshape(shape)) * invstd.reshape(shape)
    grad_bias = grad_y.sum(axis=axes)
    grad_weight = (grad_y * xhat).sum(axis=axes)
    k = invstd if weight is None else weight * invstd
    if training:
        n = x.size // C if C else 0
        gx = k.reshape(shape) * (grad_y - (grad_bias / n).reshape(shape) - xhat * (grad_weight / n).reshape(shape))
    else:
        gx = k.reshape(shape) * grad_y
    return gx.astype(x.dtype, copy=False), grad_weight.astype(x.dtype), grad_bias.astype(x.dtype)
