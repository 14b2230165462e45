"""One SGD step in place, with torch.optim.SGD's semantics (dampening 0)."""
import numpy as np


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
