"""The NumPy reference backend: every kernel written plainly, to be read like the equations.

It is the oracle the native kernels are tested against and the baseline benchmarks compare
with. Shapes are stated at the top of each function. Functions accept float32 or float64 and
compute in the input's precision (float64 for the finite-difference gradient checks).
"""
import numpy as np




def matmul(a, b, trans_a=False, trans_b=False, out=None):
    """op(a) (M, K) @ op(b) (K, N) -> (M, N), op = transpose when asked."""
    a = a.T if trans_a else a
    b = b.T if trans_b else b
    return np.matmul(a, b, out=out)


def linear(x, w, b=None, activation=None, out=None):
    """x (N, in) @ w.T, w (out, in) as PyTorch stores it, + b (out,), then the activation.

    z = x w^T + b ;  a = relu(z) when activation == "relu".
    """
    if activation not in (None, "relu"):
        raise ValueError(f"activation must be None or 'relu', got {activation!r}")
    z = x @ w.T
    if b is not None:
        z = z + b
    if activation == "relu":
        z = np.maximum(z, 0)
    if out is not None:
        out[...] = z
        return out
    return z
