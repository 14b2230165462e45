"""Central finite differences for checking the reference backward functions in float64.

    numeric_grad(f, x)  ->  d f(x) / d x   for a scalar-valued f of one float64 array x.

Each backward is checked through a scalar C = sum(y * w) with a random weight w: then
dC/dy = w is the grad_y fed to the backward, and dC/dx must match numeric_grad.
"""
import numpy as np


def numeric_grad(f, x, eps=1e-6, in_place=False, indices=None):
    """x: float64 array (any shape); f(x) -> float. Returns dC/dx, same shape as x.

    in_place=True perturbs x itself (restoring each element) and calls f() with no argument:
    for closures that read x, such as a model's parameters. indices: the flat indices of the
    elements to differentiate (the others stay 0), for inputs too large to do them all.
    """
    assert x.dtype == np.float64, "finite differences need float64"
    target = x if in_place else x.copy()
    call = f if in_place else (lambda: f(target))
    g = np.zeros_like(x)
    flat, gflat = target.reshape(-1), g.reshape(-1)
    assert np.shares_memory(flat, target), "x must be contiguous to be perturbed in place"
    for i in range(flat.size) if indices is None else indices:
        old = flat[i]
        flat[i] = old + eps
        fp = call()
        flat[i] = old - eps
        fm = call()
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * eps)
    return g


def assert_grad_close(analytic, numeric, rtol=1e-6, atol=1e-8):
    np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol)
