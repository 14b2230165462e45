"""The optimiser steps, in place: SGD (torch.optim.SGD, dampening 0) and Adam / AdamW
(torch.optim.Adam / AdamW, no amsgrad, no maximize)."""
import numpy as np

from ._geometry import _count


def sgd_step(param, grad, lr, velocity=None, momentum=0.0, weight_decay=0.0, nesterov=False):
    """param, grad, velocity: same shape. Updates param (and velocity) in place, returns None.

        g = grad + weight_decay * param
        if momentum != 0:  velocity = momentum * velocity + g
                           g = g + momentum * velocity  if nesterov  else  velocity
        param -= lr * g

    velocity starts as zeros, so the first step gives velocity = g, as PyTorch's first step
    (which initialises its buffer to g) does.
    """
    if param.shape != grad.shape:
        raise ValueError(f"grad has shape {grad.shape} but param has shape {param.shape}")
    for name, v in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
        if not v >= 0:
            raise ValueError(f"{name} must be >= 0, got {v!r}")
    if nesterov and momentum <= 0:
        raise ValueError("nesterov=True requires momentum > 0")
    dt = param.dtype.type
    g = grad + dt(weight_decay) * param if weight_decay != 0 else grad
    if momentum != 0:
        if velocity is None:
            raise ValueError("velocity is required when momentum > 0")
        if velocity.shape != param.shape:
            raise ValueError(f"velocity has shape {velocity.shape} but param has shape {param.shape}")
        velocity *= dt(momentum)
        velocity += g
        g = g + dt(momentum) * velocity if nesterov else velocity
    param -= dt(lr) * g


def adam_step(param, grad, m, v, lr, step, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
              decoupled=False):
    """param, grad, m, v: same shape. Updates param, m and v in place, returns None.

        if decoupled (AdamW):  param *= 1 - lr * weight_decay;  g = grad
        else (Adam):           g = grad + weight_decay * param
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        param -= (lr / (1 - beta1**step)) * m / (sqrt(v) / sqrt(1 - beta2**step) + eps)

    m and v start as zeros; step counts from 1 (the first step is step=1).
    """
    for name, a in (("grad", grad), ("m", m), ("v", v)):
        if a.shape != param.shape:
            raise ValueError(f"{name} has shape {a.shape} but param has shape {param.shape}")
    step = _count(step, "step")  # the first step is 1
    for name, val in (("lr", lr), ("eps", eps), ("weight_decay", weight_decay)):
        if not val >= 0:
            raise ValueError(f"{name} must be >= 0, got {val!r}")
    for name, val in (("beta1", beta1), ("beta2", beta2)):
        if not 0 <= val < 1:
            raise ValueError(f"{name} must be in [0, 1), got {val!r}")
    dt = param.dtype.type
    if decoupled:
        if weight_decay != 0:
            param *= dt(1 - lr * weight_decay)
        g = grad
    else:
        g = grad + dt(weight_decay) * param if weight_decay != 0 else grad
    m *= dt(beta1)
    m += dt(1 - beta1) * g
    v *= dt(beta2)
    v += dt(1 - beta2) * g * g
    bc1 = 1 - beta1**step
    bc2 = 1 - beta2**step
    param -= dt(lr / bc1) * m / (np.sqrt(v) / dt(np.sqrt(bc2)) + dt(eps))
