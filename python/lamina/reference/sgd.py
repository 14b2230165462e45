"""The optimiser steps: SGD (torch.optim.SGD, dampening 0) and Adam / AdamW (torch.optim.Adam /
AdamW, no amsgrad, no maximize), in place or, with the *_out arguments, out of place.

Each state array (param, velocity, m, v) has an optional output: None updates the array in
place; an array receives its new value and the input is only read (the output may be the input
itself: in place again). The Python side uses this to keep the previous state, to restore it
after a non-finite loss, without copying the parameters every step. The same operations run in
the same order either way, so both give the same bits.
"""
import numpy as np

from ._geometry import _count


def _out(a, out, name, out_name):
    """Where the new value of `a` goes: `a` itself (None) or `out`, checked like `a`."""
    if out is None:
        return a
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{out_name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != a.shape:
        raise ValueError(f"{out_name} has shape {out.shape} but {name} has shape {a.shape}")
    if out.dtype != a.dtype:
        raise TypeError(f"{out_name} must have dtype {a.dtype}, got {out.dtype}")
    return out


def check_sgd_hyper(lr, momentum, weight_decay, nesterov):
    """sgd_step's scalar arguments, checked once for every backend that implements it in Python."""
    for name, v in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
        if not v >= 0:
            raise ValueError(f"{name} must be >= 0, got {v!r}")
    if nesterov and momentum <= 0:
        raise ValueError("nesterov=True requires momentum > 0")


def check_adam_hyper(lr, step, beta1, beta2, eps, weight_decay):
    """adam_step's scalar arguments, checked; returns step as an int (the first step is 1)."""
    step = _count(step, "step")
    for name, val in (("lr", lr), ("eps", eps), ("weight_decay", weight_decay)):
        if not val >= 0:
            raise ValueError(f"{name} must be >= 0, got {val!r}")
    for name, val in (("beta1", beta1), ("beta2", beta2)):
        if not 0 <= val < 1:
            raise ValueError(f"{name} must be in [0, 1), got {val!r}")
    return step


def sgd_step(param, grad, lr, velocity=None, momentum=0.0, weight_decay=0.0, nesterov=False,
             param_out=None, velocity_out=None):
    """param, grad, velocity (and param_out, velocity_out): same shape. Returns None.

        g = grad + weight_decay * param
        if momentum != 0:  velocity = momentum * velocity + g
                           g = g + momentum * velocity  if nesterov  else  velocity
        param -= lr * g

    velocity starts as zeros, so the first step gives velocity = g, as PyTorch's first step
    (which initialises its buffer to g) does. The new param goes to param_out (default: param),
    the new velocity to velocity_out (default: velocity; needs velocity).
    """
    if param.shape != grad.shape:
        raise ValueError(f"grad has shape {grad.shape} but param has shape {param.shape}")
    check_sgd_hyper(lr, momentum, weight_decay, nesterov)
    if velocity_out is not None and velocity is None:
        raise ValueError("velocity_out requires velocity")
    p_out = _out(param, param_out, "param", "param_out")
    dt = param.dtype.type
    g = grad + dt(weight_decay) * param if weight_decay != 0 else grad
    if momentum != 0:
        if velocity is None:
            raise ValueError("velocity is required when momentum > 0")
        if velocity.shape != param.shape:
            raise ValueError(f"velocity has shape {velocity.shape} but param has shape {param.shape}")
        v_out = _out(velocity, velocity_out, "velocity", "velocity_out")
        np.multiply(velocity, dt(momentum), out=v_out)
        v_out += g
        g = g + dt(momentum) * v_out if nesterov else v_out
    elif velocity_out is not None:  # momentum 0 leaves velocity as it is
        _out(velocity, velocity_out, "velocity", "velocity_out")[...] = velocity
    np.subtract(param, dt(lr) * g, out=p_out)


def adam_step(param, grad, m, v, lr, step, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
              decoupled=False, param_out=None, m_out=None, v_out=None):
    """param, grad, m, v (and param_out, m_out, v_out): same shape. Returns None.

        if decoupled (AdamW):  param *= 1 - lr * weight_decay;  g = grad
        else (Adam):           g = grad + weight_decay * param
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        param -= (lr / (1 - beta1**step)) * m / (sqrt(v) / sqrt(1 - beta2**step) + eps)

    m and v start as zeros; step counts from 1 (the first step is step=1). The new param, m
    and v go to param_out, m_out and v_out (default: in place).
    """
    for name, a in (("grad", grad), ("m", m), ("v", v)):
        if a.shape != param.shape:
            raise ValueError(f"{name} has shape {a.shape} but param has shape {param.shape}")
    step = check_adam_hyper(lr, step, beta1, beta2, eps, weight_decay)
    p_out = _out(param, param_out, "param", "param_out")
    mo, vo = _out(m, m_out, "m", "m_out"), _out(v, v_out, "v", "v_out")
    dt = param.dtype.type
    p = param
    if decoupled:
        if weight_decay != 0:
            p = np.multiply(param, dt(1 - lr * weight_decay), out=p_out)
        g = grad
    else:
        g = grad + dt(weight_decay) * param if weight_decay != 0 else grad
    np.multiply(m, dt(beta1), out=mo)
    mo += dt(1 - beta1) * g
    np.multiply(v, dt(beta2), out=vo)
    vo += dt(1 - beta2) * g * g
    bc1 = 1 - beta1**step
    bc2 = 1 - beta2**step
    np.subtract(p, dt(lr / bc1) * mo / (np.sqrt(vo) / dt(np.sqrt(bc2)) + dt(eps)), out=p_out)
