"""Weight initialisers.

Every initialiser is ``fn(shape, rng=None, dtype=float32, ...) -> array`` for a weight of
shape (out, in) (Dense, PyTorch's layout) or (O, C, kH, kW) (Conv2D): fan_in = in or C*kH*kW,
fan_out = out or O*kH*kW. A layer takes ``init=`` as one of these names or any callable
``(shape, rng) -> array``. ``rng`` defaults to the calling thread's lamina generator
(``lamina.seed`` seeds it; each thread has its own, so models built in two threads never share a
stream); an integer ``rng`` is a seed.

- ``normal``: N(mean, std^2); the talk's "typical" start is N(0, 1) weights and biases.
- ``xavier``: Glorot & Bengio, Var = 2 / (fan_in + fan_out) (normal or uniform).
- ``he``: He et al., N(0, 2 / fan_in): unit variance of the pre-activations through ReLU.
- ``lecun``: N(0, 1 / fan_in).
- ``orthogonal``: Saxe et al., a (semi-)orthogonal matrix (rows or columns orthonormal) times gain.
- ``random_walk``: Sussillo & Abbott, N(0, omega^2 / fan_in) with omega chosen so the log of the
  back-propagated norm does an unbiased random walk: omega_ReLU = sqrt(2) exp(1.2 / (max(N, 6) - 2.4)),
  omega_linear = omega_tanh = exp(1 / (2N)), N = fan_in.
- ``lsuv(model, X_batch)``: Mishkin & Matas, orthogonal start then each layer rescaled until
  its output variance on real data is 1.
"""
from __future__ import annotations

import math
import threading

import numpy as np

_local = threading.local()  # .rng: this thread's generator


def seed(value=None):
    """Reseeds the calling thread's lamina generator (initialisers and default dropout seeds)
    with ``value`` (an int; None: fresh OS entropy). Other threads' generators are unaffected.

    Example:

        >>> from lamina import init
        >>> init.seed(0); a = init.normal((2,))
        >>> init.seed(0); bool((init.normal((2,)) == a).all())
        True
    """
    _local.rng = np.random.default_rng(value)


def get_rng() -> np.random.Generator:
    """The calling thread's ``numpy.random.Generator`` (seeded from OS entropy until ``seed``
    is called): the one layers draw their initial weights from.

    Example:

        >>> from lamina import init
        >>> init.seed(1); type(init.get_rng()).__name__
        'Generator'
    """
    rng = getattr(_local, "rng", None)
    if rng is None:
        rng = _local.rng = np.random.default_rng()
    return rng


def _gen(rng):
    """A Generator from None (this thread's), a Generator (itself) or an integer seed (new)."""
    if rng is None:
        return get_rng()
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def fans(shape):
    """(fan_in, fan_out) of a weight of shape (out, in, *kernel): in * prod(kernel) and
    out * prod(kernel). ValueError for fewer than 2 dimensions.

    Example:

        >>> from lamina import init
        >>> init.fans((6, 1, 5, 5)), init.fans((120, 400))
        ((25, 150), (400, 120))
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:
        raise ValueError(f"fan_in/fan_out need a weight of 2 or more dimensions, got shape {shape}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def normal(shape, rng=None, dtype=np.float32, std=1.0, mean=0.0):
    """N(mean, std^2) values of ``shape``, as ``dtype`` (float32). ``rng``: None (this
    thread's generator), an int seed or a Generator.

    Example:

        >>> from lamina import init
        >>> w = init.normal((10, 784), rng=0)
        >>> w.shape, w.dtype
        ((10, 784), dtype('float32'))
    """
    return (_gen(rng).standard_normal(shape) * std + mean).astype(dtype)


def uniform(shape, rng=None, dtype=np.float32, low=-1.0, high=1.0):
    """U(low, high) values of ``shape`` (default U(-1, 1)), as ``dtype``; ``rng`` as for
    ``normal``.

    Example:

        >>> from lamina import init
        >>> w = init.uniform((1000,), rng=0, low=0.0, high=0.5)
        >>> bool(w.min() >= 0.0 and w.max() < 0.5)
        True
    """
    return _gen(rng).uniform(low, high, size=shape).astype(dtype)


def zeros(shape, rng=None, dtype=np.float32):
    """Zeros of ``shape`` and ``dtype`` (the default bias initialiser); ``rng`` is ignored.

    Example:

        >>> from lamina import init
        >>> init.zeros((3,))
        array([0., 0., 0.], dtype=float32)
    """
    return np.zeros(shape, dtype=dtype)


def ones(shape, rng=None, dtype=np.float32):
    """Ones of ``shape`` and ``dtype``; ``rng`` is ignored.

    Example:

        >>> from lamina import init
        >>> init.ones((2,))
        array([1., 1.], dtype=float32)
    """
    return np.ones(shape, dtype=dtype)


def xavier(shape, rng=None, dtype=np.float32, gain=1.0, distribution="normal"):
    """Glorot & Bengio: Var = gain^2 * 2 / (fan_in + fan_out), ``distribution`` "normal" or
    "uniform" (ValueError otherwise). Keeps the variance of linear and tanh layers' signals.

    Example:

        >>> import numpy as np
        >>> from lamina import init, nn
        >>> w = init.xavier((256, 512), rng=0)   # std sqrt(2 / (512 + 256))
        >>> round(float(w.std() / np.sqrt(2 / 768)), 1)
        1.0
        >>> layer = nn.Dense(784, 100, init="xavier")
    """
    fan_in, fan_out = fans(shape)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    if distribution == "uniform":
        a = std * math.sqrt(3.0)
        return uniform(shape, rng, dtype, -a, a)
    if distribution != "normal":
        raise ValueError(f"distribution must be 'normal' or 'uniform', got {distribution!r}")
    return normal(shape, rng, dtype, std)


def he(shape, rng=None, dtype=np.float32, gain=math.sqrt(2.0)):
    """He et al.: N(0, gain^2 / fan_in), gain sqrt(2): unit variance through ReLU layers (the
    default of Dense and Conv2D). ValueError below 2 dimensions.

    Example:

        >>> import numpy as np
        >>> from lamina import init
        >>> w = init.he((256, 512), rng=0)   # std sqrt(2 / 512)
        >>> round(float(w.std() / np.sqrt(2 / 512)), 1)
        1.0
    """
    fan_in, _ = fans(shape)
    return normal(shape, rng, dtype, gain / math.sqrt(fan_in))


def lecun(shape, rng=None, dtype=np.float32):
    """LeCun: N(0, 1 / fan_in), fan_in from ``fans(shape)`` (ValueError below 2 dimensions).

    Example:

        >>> from lamina import init
        >>> round(float(init.lecun((100, 400), rng=0).std()) * 20, 1)
        1.0
    """
    return he(shape, rng, dtype, gain=1.0)


def orthogonal(shape, rng=None, dtype=np.float32, gain=1.0):
    """A weight whose (out, fan_in) matrix W has orthonormal rows (out <= fan_in: W W^T = I)
    or orthonormal columns (out > fan_in: W^T W = I), times gain. QR of a Gaussian matrix with
    the signs of R's diagonal folded in, so the result is uniformly (Haar) distributed.

    Example:

        >>> import numpy as np
        >>> from lamina import init
        >>> w = init.orthogonal((3, 5), rng=0)
        >>> bool(np.allclose(w @ w.T, np.eye(3), atol=1e-6))
        True
    """
    shape = tuple(int(s) for s in shape)
    rows = shape[0]
    cols = math.prod(shape[1:])
    a = _gen(rng).standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))  # (max, min) with orthonormal columns
    if rows < cols:
        q = q.T
    return (gain * q).reshape(shape).astype(dtype)


def random_walk_gain(n: int, nonlinearity: str = "relu") -> float:
    """Sussillo & Abbott's omega for a layer of fan-in n: sqrt(2) exp(1.2 / (max(n, 6) - 2.4))
    for "relu", exp(1 / (2n)) for "tanh" and "linear"; ValueError for another nonlinearity.

    Example:

        >>> from lamina import init
        >>> round(init.random_walk_gain(100), 4), round(init.random_walk_gain(100, "tanh"), 4)
        (1.4317, 1.005)
    """
    if nonlinearity == "relu":
        return math.sqrt(2.0) * math.exp(1.2 / (max(n, 6) - 2.4))
    if nonlinearity in ("linear", "tanh"):
        return math.exp(1.0 / (2.0 * n))
    raise ValueError(f"nonlinearity must be 'relu', 'tanh' or 'linear', got {nonlinearity!r}")


def random_walk(shape, rng=None, dtype=np.float32, nonlinearity="relu"):
    """Sussillo & Abbott's random-walk initialisation: N(0, omega^2 / fan_in) with
    ``random_walk_gain(fan_in, nonlinearity)``; ``nonlinearity`` "relu", "tanh" or "linear"
    (ValueError otherwise).

    Example:

        >>> import numpy as np
        >>> from lamina import init
        >>> w = init.random_walk((100, 100), rng=0)
        >>> round(float(w.std() * np.sqrt(100) / init.random_walk_gain(100)), 1)
        1.0
    """
    fan_in, _ = fans(shape)
    return normal(shape, rng, dtype, random_walk_gain(fan_in, nonlinearity) / math.sqrt(fan_in))


INITIALIZERS = {
    "normal": normal, "uniform": uniform, "zeros": zeros, "ones": ones, "xavier": xavier,
    "glorot": xavier, "he": he, "kaiming": he, "lecun": lecun, "orthogonal": orthogonal,
    "random_walk": random_walk,
}


def get(init):
    """An initialiser from a name of ``INITIALIZERS`` ("normal", "uniform", "zeros", "ones",
    "xavier"/"glorot", "he"/"kaiming", "lecun", "orthogonal", "random_walk") or a callable
    ``f(shape, rng)`` (returned as is). ValueError, listing the names, for an unknown one.

    Example:

        >>> from lamina import init
        >>> init.get("kaiming") is init.he
        True
    """
    if callable(init):
        return init
    try:
        return INITIALIZERS[init]
    except KeyError:
        raise ValueError(f"unknown initialiser {init!r}; expected one of {sorted(INITIALIZERS)} or a callable") from None


def lsuv(model, X_batch, tol=0.1, max_iter=10, rng=None, verbose=False):
    """Layer-sequential unit-variance initialisation (Mishkin & Matas, 2015).

    Every weight matrix or kernel (a layer's ``weight`` of 2 or more dimensions: Dense, Conv2D
    and layers like them) gets an orthogonal start and a zero bias; then, layer by layer
    from the input, the weight is divided by the standard deviation of that layer's output on
    ``X_batch`` until the variance is within ``tol`` of 1 (at most ``max_iter`` rescalings).
    ``model`` is a Sequential; returns it. The batch runs through ``model[:i+1]`` (shared layers),
    so layers after i do not affect layer i's statistics.

    Example:

        >>> import numpy as np
        >>> from lamina import init, models
        >>> X = np.random.default_rng(0).random((64, 1, 28, 28), dtype=np.float32)
        >>> model = init.lsuv(models.lenet5(), X, rng=0)
        >>> round(float(model[:1].predict(X).std()), 1)
        1.0
    """
    rng = _gen(rng)  # one stream for all layers: an integer seed must not repeat per layer
    X_batch = np.asarray(X_batch)
    for i, layer in enumerate(model.layers):
        w, b = getattr(layer, "weight", None), getattr(layer, "bias", None)
        if w is None or len(w.shape) < 2:  # (a BatchNorm's weight is a vector of scales)
            continue
        w.assign(orthogonal(w.shape, rng, w.dtype))
        if b is not None:
            b.be.fill(b.data, 0.0)
        head = model[: i + 1]
        for it in range(max_iter):
            var = float(np.var(head.predict(X_batch, batch_size=max(1, len(X_batch)))))
            if verbose:
                print(f"lsuv: layer {i} ({type(layer).__name__}) iteration {it}: output variance {var:.4f}")
            if abs(var - 1.0) < tol or var == 0.0 or not math.isfinite(var):
                break
            w.be.scale(w.data, 1.0 / math.sqrt(var), out=w.data)
    return model
