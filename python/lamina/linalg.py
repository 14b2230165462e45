"""Vectors of parameters and the Krylov tools on them: what the saddle-free Newton optimiser
(``lamina.optim.SaddleFreeNewton``) and the Hessian diagnostics (``lamina.diagnostics``) share.

The vectors live on the host in float64: parameters and gradients cross with explicit
``to_numpy`` / ``assign`` (one copy per Hessian-vector product), whatever the backend.
"""
from __future__ import annotations

import math

import numpy as np


def parameters_to_vector(params):
    """The values of ``params`` (Parameters), flattened and concatenated in order: a float64
    host vector of sum(p.size) elements (empty for no parameters).

    Example:

        >>> import numpy as np
        >>> from lamina import linalg, nn
        >>> linalg.parameters_to_vector([nn.Parameter(np.ones((2, 2))), nn.Parameter(np.zeros(1))])
        array([1., 1., 1., 1., 0.])
    """
    return np.concatenate([p.numpy().ravel().astype(np.float64) for p in params]) if params else np.zeros(0)


def vector_to_parameters(v, params):
    """Writes the host vector ``v`` (sum(p.size) elements, the layout of ``parameters_to_vector``)
    into ``params``, each piece reshaped to its parameter and converted to its dtype and backend.

    Example:

        >>> import numpy as np
        >>> from lamina import linalg, nn
        >>> p = nn.Parameter(np.zeros((2, 2)))
        >>> linalg.vector_to_parameters(np.arange(4.0), [p]); p.numpy()
        array([[0., 1.],
               [2., 3.]])
    """
    i = 0
    for p in params:
        n = p.size
        p.assign(v[i: i + n].reshape(p.shape))
        i += n


def gradients_to_vector(params):
    """The gradients of ``params``, flattened and concatenated in order (float64, host): the
    layout of ``parameters_to_vector``.

    Example:

        >>> import numpy as np
        >>> from lamina import linalg, nn
        >>> p = nn.Parameter(np.zeros(2)); p.grad = np.array([3.0, 4.0])
        >>> linalg.gradients_to_vector([p])
        array([3., 4.])
    """
    return np.concatenate([p.be.to_numpy(p.grad).ravel().astype(np.float64) for p in params]) if params \
        else np.zeros(0)


def default_hvp_eps(dtype, theta):
    """The perturbation norm of ``central_difference_hvp``: 1e-5 in float64, 3e-3 in float32
    (about the cube root of the unit roundoff, where truncation and rounding errors balance),
    relative to the parameters' RMS when that exceeds 1.

    Example:

        >>> import numpy as np
        >>> from lamina import linalg
        >>> linalg.default_hvp_eps(np.float64, np.zeros(3)), linalg.default_hvp_eps(np.float32, np.zeros(3))
        (1e-05, 0.003)
    """
    scale = max(1.0, float(np.sqrt(np.mean(np.square(theta))))) if np.size(theta) else 1.0
    return (1e-5 if np.dtype(dtype) == np.float64 else 3e-3) * scale


def central_difference_hvp(gradient, theta, v, eps):
    """H v ~ (g(theta + h v) - g(theta - h v)) / (2 h), h = eps / ||v||: two gradient
    evaluations, exact for quadratics up to rounding. ``gradient(point)`` returns the gradient
    vector (float64, host) at a point; theta and v are float64 host vectors of one length. The
    caller puts its parameters back at theta afterwards (gradient() leaves them at the last point).

    Example:

        >>> import numpy as np
        >>> from lamina import linalg
        >>> A = np.diag([1.0, 2.0, 3.0])   # the Hessian of w.A.w / 2, whose gradient is A w
        >>> linalg.central_difference_hvp(lambda w: A @ w, np.zeros(3), np.array([1.0, 1.0, 0.0]), 1e-5)
        array([1., 2., 0.])
    """
    nv = float(np.linalg.norm(v))
    if nv == 0.0:
        return np.zeros_like(v)
    h = eps / nv
    gp = gradient(theta + h * v)
    gm = gradient(theta - h * v)
    return (gp - gm) / (2 * h)


def lanczos(matvec, n, steps, seed=0, tol=1e-10, v0=None, return_basis=False):
    """Lanczos tridiagonalisation with full reorthogonalisation for a symmetric operator on R^n.
    Returns (alphas, betas): the diagonal (steps) and off-diagonal (steps - 1) of T. On an
    invariant subspace (beta ~ 0) it restarts with a random vector orthogonal to the basis
    (beta = 0 in T), so with steps = n the eigenvalues of T are those of the operator.

    ``v0``: the start vector (default: random; SaddleFreeNewton starts from the gradient, so the
    basis spans the Krylov subspace span{g, Hg, ..., H^(steps-1) g}). ``return_basis``: also
    return V (steps, n), the orthonormal Lanczos vectors as rows, with T = V H V^T (the operator
    projected on their span). One matvec per step.

    Example:

        >>> import numpy as np
        >>> from lamina import linalg
        >>> A = np.diag([1.0, 2.0, 3.0])
        >>> alphas, betas = linalg.lanczos(lambda v: A @ v, 3, steps=3)
        >>> np.round(np.linalg.eigvalsh(linalg.tridiagonal(alphas, betas)), 6)
        array([1., 2., 3.])
    """
    rng = np.random.default_rng(seed)
    steps = int(min(steps, n))
    V = np.zeros((steps, n))
    alphas, betas = [], []
    v = rng.standard_normal(n) if v0 is None else np.array(v0, dtype=np.float64).ravel()
    if v.shape != (n,):
        raise ValueError(f"v0 must have {n} elements, got {v.size}")
    nv0 = float(np.linalg.norm(v))
    if not (nv0 > 0 and math.isfinite(nv0)):
        raise ValueError("the Lanczos start vector must be finite and nonzero")
    v /= nv0
    v_prev, beta, scale = np.zeros(n), 0.0, 0.0
    for j in range(steps):
        V[j] = v
        w = np.asarray(matvec(v), dtype=np.float64)
        alpha = float(w @ v)
        w = w - alpha * v - beta * v_prev
        for _ in range(2):  # full reorthogonalisation, twice is enough (Kahan/Parlett)
            w -= V[: j + 1].T @ (V[: j + 1] @ w)
        alphas.append(alpha)
        if j == steps - 1:
            break
        beta = float(np.linalg.norm(w))
        scale = max(scale, abs(alpha), beta)
        if beta <= tol * max(scale, 1e-300):
            w = rng.standard_normal(n)
            for _ in range(2):
                w -= V[: j + 1].T @ (V[: j + 1] @ w)
            betas.append(0.0)
            v_prev, v, beta = v, w / np.linalg.norm(w), 0.0
        else:
            betas.append(beta)
            v_prev, v = v, w / beta
    if return_basis:
        return np.array(alphas), np.array(betas), V
    return np.array(alphas), np.array(betas)


def tridiagonal(alphas, betas):
    """The symmetric tridiagonal matrix T of a Lanczos run, float64 (m, m): ``alphas`` (m,)
    on the diagonal, ``betas`` (m - 1,) beside it.

    Example:

        >>> from lamina import linalg
        >>> linalg.tridiagonal([1.0, 2.0], [0.5])
        array([[1. , 0.5],
               [0.5, 2. ]])
    """
    T = np.diag(np.asarray(alphas, dtype=np.float64))
    if len(betas):
        T += np.diag(betas, 1) + np.diag(betas, -1)
    return T
