"""Shared helpers of the model-layer tests: central finite differences and model cloning."""
import gradcheck
import numpy as np

import lamina
from lamina import nn


def numeric_grad(f, x, eps=1e-6):
    """d f / d x by central differences; f() reads x (perturbed in place) and returns a float."""
    return gradcheck.numeric_grad(f, x, eps, in_place=True)


def assert_close(a, b, rtol=1e-6, atol=1e-8, what=""):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, f"{what}: shapes {a.shape} vs {b.shape}"
    err = np.max(np.abs(a - b) / (atol + rtol * np.abs(b))) if a.size else 0.0
    assert err <= 1.0, f"{what}: max scaled error {err:.3g}\n{a}\nvs\n{b}"


def gradcheck_layer(layer, x, rng, training=False, before_forward=None, rtol=1e-5, atol=1e-7):
    """Checks layer.backward (input and parameter gradients) against central differences of
    L = sum(forward(x) * R) in float64 on the numpy backend."""
    layer.to("numpy").astype(np.float64)
    x = np.array(x, dtype=np.float64)

    def fwd():
        if before_forward is not None:
            before_forward()
        return layer.forward(x, training=training)

    y = fwd()
    R = rng.standard_normal(y.shape)

    def loss():
        return float(np.sum(fwd() * R))

    fwd()
    layer.zero_grad()
    dx = layer.backward(R.copy())
    assert_close(dx, numeric_grad(loss, x), rtol, atol, f"{type(layer).__name__} dC/dx")
    for name, p in layer.named_parameters():
        analytic = p.grad.copy()
        assert_close(analytic, numeric_grad(loss, p.data), rtol, atol, f"{type(layer).__name__} dC/d{name}")


def gradcheck_model(model, loss_fn, x, target, training=False, rtol=1e-5, atol=1e-7, check_input=True):
    """Whole-model check: the loss's gradient through Sequential.backward vs central differences."""
    model.to("numpy").astype(np.float64)
    x = np.array(x, dtype=np.float64)

    def loss():
        with lamina.use_backend("numpy"):
            return loss_fn(model.forward(x, training=training), target)[0]

    with lamina.use_backend("numpy"):
        out = model.forward(x, training=training)
        _, g = loss_fn(out, target)
    model.zero_grad()
    dx = model.backward(g)
    if check_input:
        assert_close(dx, numeric_grad(loss, x), rtol, atol, "model dC/dx")
    for name, p in model.named_parameters():
        assert_close(p.grad.copy(), numeric_grad(loss, p.data), rtol, atol, f"model dC/d{name}")


def clone(model):
    """A new Sequential with the same architecture and copies of the parameters."""
    from lamina.io import layer_from_entry, layer_to_entry

    other = layer_from_entry(layer_to_entry(model))
    for (_, p), (_, q) in zip(model.named_parameters(), other.named_parameters()):
        q.data = p.data.copy()
        q.grad = np.zeros_like(q.data)
    return other


def params_of(model):
    return [p.data.copy() for p in model.parameters()]


__all__ = ["numeric_grad", "assert_close", "gradcheck_layer", "gradcheck_model", "clone", "params_of", "nn"]
