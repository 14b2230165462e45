"""Central finite differences for checking the reference backward functions in float64.

    numeric_grad(f, x)  ->  d f(x) / d x   for a scalar-valued f of one float64 array x.

Each backward is checked through a scalar C = sum(y * w) with a random weight w: then
dC/dy = w is the grad_y fed to the backward, and dC/dx must match numeric_grad.
"""
import numpy as np


def numeric_grad(f, x, eps=1e-6):
    """x: float64 array (any shape); f(x) -> float. Returns dC/dx, same shape as x."""
    assert x.dtype == np.float64, "finite differences need float64"
    x = x.copy()
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        fp = f(x)
        flat[i] = old - eps
        fm = f(x)
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * eps)
    return g


def assert_grad_close(analytic, numeric, rtol=1e-6, atol=1e-8):
    np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol)
