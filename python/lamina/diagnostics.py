"""Diagnostics: per-layer gradient norms, the Hessian's spectrum, MC-dropout uncertainty.

- ``gradient_norms``: ||dC/dW|| and ||dC/db|| per layer on a data set: the talk's "the first
  layers learn slower than the later ones" (the vanishing gradient) made measurable.
  ``GradientNormRecorder`` is a ``fit`` callback recording them at the start and every epoch.
- ``hessian_spectrum``: extreme eigenvalues of the Hessian of the cost with respect to all
  trainable parameters, by Lanczos iteration (full reorthogonalisation) on Hessian-vector
  products computed as central differences of exact gradients, in float64 on a copy of the
  model (so the products are accurate to about 1e-8 relative for smooth activations; ReLU
  networks have a Hessian only almost everywhere). With as many Lanczos steps as parameters it
  is the whole spectrum. ``saddle_index`` is the fraction of negative eigenvalues.
- ``mc_dropout_predict``: the mean and standard deviation of predictions with dropout left on
  (Gal & Ghahramani 2016, dropout as a Bayesian approximation): an uncertainty per example.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import backend as _backend
from . import losses as _losses
from ._workflows import as_sequential, clone_layer, model_backend, model_dtype
from .nn.batches import Batches
from .linalg import central_difference_hvp, default_hvp_eps, lanczos, tridiagonal  # noqa: F401 (public here too)
from .linalg import gradients_to_vector, parameters_to_vector, vector_to_parameters
from .training import apply_loss, prepare_target


# -- gradients -------------------------------------------------------------------------------
def _named_param_layers(model, prefix=""):
    """[(label, layer)] for every layer with parameters, nested Sequentials flattened."""
    from .nn import Sequential

    out = []
    for i, layer in enumerate(model.layers):
        label = f"{prefix}{i}"
        if isinstance(layer, Sequential):
            out += _named_param_layers(layer, label + ".")
        elif layer.parameters():
            out.append((label, layer))
    return out


def _accumulate_gradient(model, X, y, loss_fn, batch_size, training=False):
    """Zeroes every gradient, then accumulates the mean-over-X gradient of the loss; returns the
    mean loss. Batches are weighted by their size, so the result does not depend on batch_size."""
    dtype = model_dtype(model)
    be = model_backend(model)
    n, m = len(X), len(y)
    if n == 0 or m != n:
        raise ValueError(f"need matching non-empty X and y, got {n} and {m} samples")
    data = Batches(X, prepare_target(loss_fn, y, dtype), n if batch_size is None else batch_size, be, dtype)
    model.zero_grad()
    total = 0.0
    for xb, yb in data:
        out = model.forward_workspace(xb, training)
        lval, g = apply_loss(loss_fn, out, yb, be)
        w = len(xb) / n
        total += lval * w
        if w != 1.0:
            be.scale(g, w, out=g)
        model.backward(g)
    return total


def gradient_norms(model, X, y, loss="cross_entropy", batch_size=1000, training=False, include_frozen=True):
    """Per-layer L2 norms of the gradient of the mean cost over (X, y).

    Returns a list with one dict per layer that has parameters: "layer" (its index in the model,
    "i.j" inside nested Sequentials), "type", "weight" (||dC/dW||), "bias" (||dC/db|| = the norm
    of the layer's mean error delta, the talk's "speed of learning"; None without bias),
    "weight_rms" (||dC/dW|| / sqrt(#W), comparable across layer sizes) and "relative"
    (||dC/dW|| / ||W||). ``training`` runs the forward in training mode (dropout on).
    Frozen parameters are included (temporarily unfrozen) unless ``include_frozen`` is False.
    The parameters' ``grad`` buffers are overwritten.

    Example:

        >>> import numpy as np
        >>> from lamina import diagnostics, nn
        >>> X = np.random.default_rng(0).random((64, 4), dtype=np.float32); y = (X.sum(1) > 2).astype(np.int64)
        >>> model = nn.Sequential(nn.Dense(4, 3), nn.Tanh(), nn.Dense(3, 2))   # 23 parameters
        >>> rows = diagnostics.gradient_norms(model, X, y)
        >>> [(r["layer"], r["type"]) for r in rows], sorted(rows[0])
        ([('0', 'Dense'), ('2', 'Dense')], ['bias', 'layer', 'relative', 'type', 'weight', 'weight_rms'])
    """
    model = as_sequential(model)
    loss_fn = _losses.get(loss)
    frozen = [p for p in model.parameters() if not p.trainable] if include_frozen else []
    for p in frozen:
        p.trainable = True
    try:
        _accumulate_gradient(model, X, y, loss_fn, batch_size, training)
        rows = []
        for label, layer in _named_param_layers(model):
            named = layer.named_parameters()
            # "weight": every parameter but the bias together (RNN: weight_ih and weight_hh)
            ws = [p for n, p in named if n != "bias"]
            b = next((p for n, p in named if n == "bias"), None)
            live = [p for p in ws if p.trainable]
            gw = _norm([p.grad for p in live]) if live else None
            gb = _norm([b.grad]) if b is not None and b.trainable else None
            wn = _norm([p.data for p in live]) if live else 0.0
            size = sum(p.size for p in live)
            rows.append({"layer": label, "type": type(layer).__name__, "weight": gw, "bias": gb,
                         "weight_rms": None if gw is None else gw / math.sqrt(size),
                         "relative": None if gw is None or wn == 0 else gw / wn})
    finally:
        for p in frozen:
            p.trainable = False
    return rows


def _norm(arrays):
    """The L2 norm of several arrays together (sums of squares on their backend, in float64)."""
    total = 0.0
    for a in arrays:
        be = _backend.backend_of(a)
        total += float(be.dot(a, a))
    return math.sqrt(total)


class GradientNormRecorder:
    """A ``fit`` callback: records ``gradient_norms`` on a fixed probe set (X, y) when training
    begins (epoch 0) and after every epoch (or every ``every_batches`` batches when given):
    ``epochs`` lists the records' epoch numbers and ``series(key)`` their per-layer norms.

    Example:

        >>> import numpy as np
        >>> from lamina import diagnostics, nn
        >>> X = np.random.default_rng(0).random((64, 4), dtype=np.float32); y = (X.sum(1) > 2).astype(np.int64)
        >>> model = nn.Sequential(nn.Dense(4, 3), nn.Tanh(), nn.Dense(3, 2))   # 23 parameters
        >>> rec = diagnostics.GradientNormRecorder(X, y)
        >>> _ = model.fit(X, y, epochs=2, batch_size=16, callbacks=[rec], verbose=0)
        >>> rec.epochs, sorted(rec.series("bias"))
        ([0, 1, 2], ['0', '2'])
    """

    def __init__(self, X, y, loss="cross_entropy", batch_size=1000, every_batches=None):
        self.X, self.y = X, y
        self.loss = loss
        self.batch_size = batch_size
        self.every_batches = every_batches
        self.model = None
        self.records = []  # [{"epoch": completed epochs, "step": batches so far, "layers": [rows]}]
        self._epoch = 0
        self._step = 0

    def set_model(self, model):
        """Called by ``fit`` before training with the model being trained (a Sequential): the
        model whose gradient norms are recorded.

        Example:

            >>> import numpy as np
            >>> from lamina import diagnostics, nn
            >>> X = np.random.default_rng(0).random((64, 4), dtype=np.float32); y = (X.sum(1) > 2).astype(np.int64)
            >>> model = nn.Sequential(nn.Dense(4, 8), nn.ReLU(), nn.Dense(8, 2))
            >>> rec = diagnostics.GradientNormRecorder(X, y)
            >>> _ = model.fit(X, y, epochs=2, batch_size=16, callbacks=[rec], verbose=0)
            >>> rec.model is model
            True
        """
        self.model = model

    def _record(self):
        self.records.append({"epoch": self._epoch, "step": self._step,
                             "layers": gradient_norms(self.model, self.X, self.y, self.loss, self.batch_size)})

    def on_train_begin(self, logs=None):
        """Called by ``fit`` when training begins: records the norms before any step (epoch 0),
        unless an earlier ``fit`` already recorded.

        Example:

            >>> import numpy as np
            >>> from lamina import diagnostics, nn
            >>> X = np.random.default_rng(0).random((64, 4), dtype=np.float32); y = (X.sum(1) > 2).astype(np.int64)
            >>> model = nn.Sequential(nn.Dense(4, 8), nn.ReLU(), nn.Dense(8, 2))
            >>> rec = diagnostics.GradientNormRecorder(X, y)
            >>> _ = model.fit(X, y, epochs=2, batch_size=16, callbacks=[rec], verbose=0)
            >>> rec.records[0]["epoch"], rec.records[0]["step"]
            (0, 0)
        """
        if not self.records:
            self._record()

    def on_epoch_begin(self, epoch, logs=None):
        """Called by ``fit`` before each epoch with its 0-based number (the completed-epoch
        count that records made within it carry).

        Example:

            >>> import numpy as np
            >>> from lamina import diagnostics, nn
            >>> X = np.random.default_rng(0).random((64, 4), dtype=np.float32); y = (X.sum(1) > 2).astype(np.int64)
            >>> model = nn.Sequential(nn.Dense(4, 8), nn.ReLU(), nn.Dense(8, 2))
            >>> rec = diagnostics.GradientNormRecorder(X, y)
            >>> _ = model.fit(X, y, epochs=2, batch_size=16, callbacks=[rec], verbose=0)
            >>> rec.on_epoch_begin(5); rec._epoch
            5
        """
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None):
        """Called by ``fit`` after each training step: counts the steps, and records every
        ``every_batches`` steps when that was given.

        Example:

            >>> import numpy as np
            >>> from lamina import diagnostics, nn
            >>> X = np.random.default_rng(0).random((64, 4), dtype=np.float32); y = (X.sum(1) > 2).astype(np.int64)
            >>> model = nn.Sequential(nn.Dense(4, 8), nn.ReLU(), nn.Dense(8, 2))
            >>> rec = diagnostics.GradientNormRecorder(X, y)
            >>> _ = model.fit(X, y, epochs=2, batch_size=16, callbacks=[rec], verbose=0)
            >>> rec.records[-1]["step"]
            8
        """
        self._step += 1
        if self.every_batches and self._step % self.every_batches == 0:
            self._record()

    def on_epoch_end(self, epoch, logs=None):
        """Called by ``fit`` after each epoch: records the norms after it (unless
        ``every_batches`` was given), tagged with the completed-epoch count epoch + 1.

        Example:

            >>> import numpy as np
            >>> from lamina import diagnostics, nn
            >>> X = np.random.default_rng(0).random((64, 4), dtype=np.float32); y = (X.sum(1) > 2).astype(np.int64)
            >>> model = nn.Sequential(nn.Dense(4, 8), nn.ReLU(), nn.Dense(8, 2))
            >>> rec = diagnostics.GradientNormRecorder(X, y)
            >>> _ = model.fit(X, y, epochs=2, batch_size=16, callbacks=[rec], verbose=0)
            >>> len(rec.records)
            3
        """
        self._epoch = epoch + 1
        if not self.every_batches:
            self._record()

    @property
    def epochs(self):
        """The completed-epoch count of each record, a list of ints (0 = before training).

        Example:

            >>> import numpy as np
            >>> from lamina import diagnostics, nn
            >>> X = np.random.default_rng(0).random((64, 4), dtype=np.float32); y = (X.sum(1) > 2).astype(np.int64)
            >>> model = nn.Sequential(nn.Dense(4, 8), nn.ReLU(), nn.Dense(8, 2))
            >>> rec = diagnostics.GradientNormRecorder(X, y)
            >>> _ = model.fit(X, y, epochs=2, batch_size=16, callbacks=[rec], verbose=0)
            >>> rec.epochs
            [0, 1, 2]
        """
        return [r["epoch"] for r in self.records]

    def series(self, key="bias"):
        """{layer label: [value of ``key`` ("bias", "weight", "weight_rms", "relative") per
        record]}, the labels being the layers' indices in the model; KeyError for another key.

        Example:

            >>> import numpy as np
            >>> from lamina import diagnostics, nn
            >>> X = np.random.default_rng(0).random((64, 4), dtype=np.float32); y = (X.sum(1) > 2).astype(np.int64)
            >>> model = nn.Sequential(nn.Dense(4, 8), nn.ReLU(), nn.Dense(8, 2))
            >>> rec = diagnostics.GradientNormRecorder(X, y)
            >>> _ = model.fit(X, y, epochs=2, batch_size=16, callbacks=[rec], verbose=0)
            >>> {label: len(norms) for label, norms in rec.series("bias").items()}
            {'0': 3, '2': 3}
        """
        out = {}
        for r in self.records:
            for row in r["layers"]:
                out.setdefault(row["layer"], []).append(row[key])
        return out


# -- the Hessian -----------------------------------------------------------------------------
def _trainable(model):
    return [p for p in model.parameters() if p.trainable]


class _HessianOperator:
    """v -> H v for the mean cost of a model over (X, y), by central differences of gradients:
    H v ~ (g(theta + eps v) - g(theta - eps v)) / (2 eps), eps scaled to ||v|| and ||theta||."""

    def __init__(self, model, X, y, loss, batch_size=None, dtype=np.float64, backend="numpy", eps=None):
        work = clone_layer(as_sequential(model))
        dtype = np.dtype(dtype)
        work.astype(dtype)
        if backend is not None:
            work.to(backend)
        if not _backend.supports(model_backend(work), dtype):
            raise ValueError(f"backend {model_backend(work).name!r} does not support {dtype}; use backend='numpy'")
        X = np.ascontiguousarray(X, dtype=dtype)
        # Layers before the first trainable one (pooling, flattening, frozen features) do not
        # depend on the parameters: run them once and keep their output.
        first = next((i for i, layer in enumerate(work.layers) if any(p.trainable for p in layer.parameters())),
                     None)
        if first is None:
            raise ValueError("the model has no trainable parameters")
        if first > 0:
            X = np.ascontiguousarray(work[:first].predict(X))
            work = work[first:]
        self.model = work
        self.params = _trainable(work)
        self.loss_fn = _losses.get(loss)
        self.X = X
        self.y = y
        self.batch_size = batch_size
        self.theta = parameters_to_vector(self.params)
        self.n = self.theta.size
        self.eps = default_hvp_eps(dtype, self.theta) if eps is None else float(eps)
        self.evaluations = 0

    def gradient(self, theta=None):
        """(loss, gradient vector) at theta (default: the model's point)."""
        vector_to_parameters(self.theta if theta is None else theta, self.params)
        lval = _accumulate_gradient(self.model, self.X, self.y, self.loss_fn, self.batch_size)
        self.evaluations += 1
        return lval, gradients_to_vector(self.params)

    def __call__(self, v):
        hv = central_difference_hvp(lambda t: self.gradient(t)[1], self.theta, v, self.eps)
        vector_to_parameters(self.theta, self.params)
        return hv


def hessian_vector_product(model, X, y, v, loss="cross_entropy", batch_size=None, eps=None):
    """H v for the Hessian of the mean cost over (X, y) w.r.t. the trainable parameters (in
    ``model.parameters()`` order, flattened), by central differences in float64.

    Example:

        >>> import numpy as np
        >>> from lamina import diagnostics, nn
        >>> X = np.random.default_rng(0).random((64, 4), dtype=np.float32); y = (X.sum(1) > 2).astype(np.int64)
        >>> model = nn.Sequential(nn.Dense(4, 3), nn.Tanh(), nn.Dense(3, 2))   # 23 parameters
        >>> v = np.zeros(23); v[0] = 1.0
        >>> Hv = diagnostics.hessian_vector_product(model, X, y, v)
        >>> Hv.shape, bool(np.allclose(Hv, diagnostics.exact_hessian(model, X, y)[:, 0], atol=1e-6))
        ((23,), True)
    """
    return _HessianOperator(model, X, y, loss, batch_size, eps=eps)(np.asarray(v, dtype=np.float64))


@dataclass
class HessianSpectrum:
    """``eigenvalues``: the k selected extreme eigenvalues, ascending. ``ritz_values`` / ``weights``:
    all Lanczos Ritz values and their weights (squared first components of T's eigenvectors:
    the stochastic Lanczos quadrature estimate of the spectral density, which sums to 1).
    ``full``: the Lanczos run had as many steps as parameters, so ``ritz_values`` is the whole
    spectrum. ``loss`` and ``grad_norm`` at the point; ``n_params``; ``gradient_evaluations``.

    Example:

        >>> import numpy as np
        >>> from lamina import diagnostics, nn
        >>> X = np.random.default_rng(0).random((64, 4), dtype=np.float32); y = (X.sum(1) > 2).astype(np.int64)
        >>> model = nn.Sequential(nn.Dense(4, 3), nn.Tanh(), nn.Dense(3, 2))   # 23 parameters
        >>> s = diagnostics.hessian_spectrum(model, X, y, k=4)
        >>> s.n_params, len(s.eigenvalues), s.lambda_min <= s.lambda_max
        (23, 4, True)
    """

    eigenvalues: np.ndarray
    ritz_values: np.ndarray
    weights: np.ndarray
    n_params: int
    full: bool
    loss: float
    grad_norm: float
    gradient_evaluations: int
    rel_tol: float = 1e-6
    extra: dict = field(default_factory=dict)

    @property
    def lambda_min(self) -> float:
        """The smallest Ritz value, a float: the most negative curvature found (negative at a
        saddle point).

        Example:

            >>> import numpy as np
            >>> from lamina import diagnostics
            >>> s = diagnostics.HessianSpectrum(eigenvalues=np.array([-1.0, 2.0]), ritz_values=np.array([-1.0, 0.5, 2.0]),
            ...     weights=np.full(3, 1 / 3), n_params=3, full=True, loss=0.5, grad_norm=0.1, gradient_evaluations=6)
            >>> s.lambda_min, s.lambda_max
            (-1.0, 2.0)
        """
        return float(self.ritz_values[0])

    @property
    def lambda_max(self) -> float:
        """The largest Ritz value, a float: the sharpest curvature (it bounds a stable
        gradient-descent rate by 2 / lambda_max).

        Example:

            >>> import numpy as np
            >>> from lamina import diagnostics
            >>> s = diagnostics.HessianSpectrum(eigenvalues=np.array([-1.0, 2.0]), ritz_values=np.array([-1.0, 0.5, 2.0]),
            ...     weights=np.full(3, 1 / 3), n_params=3, full=True, loss=0.5, grad_norm=0.1, gradient_evaluations=6)
            >>> s.lambda_max
            2.0
        """
        return float(self.ritz_values[-1])

    @property
    def saddle_index(self) -> float:
        """Fraction of negative eigenvalues (below -rel_tol * max|lambda|): exact when ``full``,
        otherwise the spectral-density estimate from the Lanczos weights.

        Example:

            >>> import numpy as np
            >>> from lamina import diagnostics, nn
            >>> X = np.random.default_rng(0).random((64, 4), dtype=np.float32); y = (X.sum(1) > 2).astype(np.int64)
            >>> model = nn.Sequential(nn.Dense(4, 3), nn.Tanh(), nn.Dense(3, 2))   # 23 parameters
            >>> s = diagnostics.hessian_spectrum(model, X, y, full=True)
            >>> 0.0 <= s.saddle_index <= 1.0
            True
        """
        return saddle_index(self)

    def to_dict(self):
        """A JSON-able summary: the eigenvalues as a list, lambda_min, lambda_max,
        saddle_index, n_params, full, loss, grad_norm and gradient_evaluations.

        Example:

            >>> import numpy as np
            >>> from lamina import diagnostics
            >>> s = diagnostics.HessianSpectrum(eigenvalues=np.array([-1.0, 2.0]), ritz_values=np.array([-1.0, 0.5, 2.0]),
            ...     weights=np.full(3, 1 / 3), n_params=3, full=True, loss=0.5, grad_norm=0.1, gradient_evaluations=6)
            >>> d = s.to_dict(); d["eigenvalues"], round(d["saddle_index"], 3)
            ([-1.0, 2.0], 0.333)
        """
        return {"eigenvalues": self.eigenvalues.tolist(), "lambda_min": self.lambda_min,
                "lambda_max": self.lambda_max, "saddle_index": self.saddle_index, "n_params": self.n_params,
                "full": self.full, "loss": self.loss, "grad_norm": self.grad_norm,
                "gradient_evaluations": self.gradient_evaluations}


def saddle_index(spectrum, rel_tol=None):
    """Fraction of negative eigenvalues at a point: of a HessianSpectrum (exact when it is the
    full spectrum, else the Lanczos density estimate) or of an array of eigenvalues. Values
    within ``rel_tol`` * max|lambda| of zero count as zero (numerical noise, flat directions).

    Example:

        >>> import numpy as np
        >>> from lamina import diagnostics
        >>> diagnostics.saddle_index(np.array([-2.0, -1.0, 1e-12, 3.0]))   # the tiny one counts as zero
        0.5
    """
    if isinstance(spectrum, HessianSpectrum):
        tol = spectrum.rel_tol if rel_tol is None else rel_tol
        ev, w = spectrum.ritz_values, spectrum.weights
        thr = tol * float(np.max(np.abs(ev))) if ev.size else 0.0
        if spectrum.full:
            return float(np.count_nonzero(ev < -thr) / ev.size)
        return float(w[ev < -thr].sum() / w.sum())
    ev = np.asarray(spectrum, dtype=np.float64).ravel()
    if ev.size == 0:
        return float("nan")
    tol = 1e-6 if rel_tol is None else rel_tol
    return float(np.count_nonzero(ev < -tol * float(np.max(np.abs(ev)))) / ev.size)


def hessian_spectrum(model, X, y, loss="cross_entropy", k=20, steps=None, full=False, which="both",
                     batch_size=None, dtype=np.float64, eps=None, seed=0, rel_tol=1e-6):
    """The k extreme eigenvalues of the Hessian of the mean cost over (X, y) with respect to all
    trainable parameters, by Lanczos on finite-difference Hessian-vector products.

    ``steps``: Lanczos steps (default max(3k, k + 30), at most the parameter count); ``full=True``
    takes as many steps as parameters: the whole spectrum. ``which``: "both" (the ceil(k/2)
    largest and floor(k/2) smallest), "largest", "smallest" or "magnitude". The model is not
    changed (the work happens on a float64 copy on the NumPy backend). Returns HessianSpectrum.

    Example:

        >>> import numpy as np
        >>> from lamina import diagnostics, nn
        >>> X = np.random.default_rng(0).random((64, 4), dtype=np.float32); y = (X.sum(1) > 2).astype(np.int64)
        >>> model = nn.Sequential(nn.Dense(4, 3), nn.Tanh(), nn.Dense(3, 2))   # 23 parameters
        >>> s = diagnostics.hessian_spectrum(model, X, y, full=True)   # 23 Lanczos steps: every eigenvalue
        >>> H = diagnostics.exact_hessian(model, X, y)
        >>> bool(np.allclose(s.ritz_values, np.linalg.eigvalsh(H), atol=1e-5))
        True
    """
    op = _HessianOperator(model, X, y, loss, batch_size, dtype, eps=eps)
    n = op.n
    if full:
        steps = n
    elif steps is None:
        steps = max(3 * int(k), int(k) + 30)
    steps = max(1, min(int(steps), n))
    loss0, g0 = op.gradient()
    alphas, betas = lanczos(op, n, steps, seed=seed)
    theta, U = np.linalg.eigh(tridiagonal(alphas, betas))
    # the spectral measure of the start vector (stochastic Lanczos quadrature with one probe):
    # a rough density estimate, used for the saddle index when the run is not full
    weights = U[0] ** 2
    k = min(int(k), len(theta))
    if which == "both":
        top, bottom = (k + 1) // 2, k // 2
        sel = np.concatenate([theta[:bottom], theta[len(theta) - top:]]) if k else theta[:0]
    elif which == "largest":
        sel = theta[len(theta) - k:]
    elif which == "smallest":
        sel = theta[:k]
    elif which == "magnitude":
        sel = np.sort(theta[np.argsort(-np.abs(theta))[:k]])
    else:
        raise ValueError(f"which must be 'both', 'largest', 'smallest' or 'magnitude', got {which!r}")
    return HessianSpectrum(eigenvalues=np.sort(sel), ritz_values=theta, weights=weights, n_params=n,
                           full=steps == n, loss=float(loss0), grad_norm=float(np.linalg.norm(g0)),
                           gradient_evaluations=op.evaluations, rel_tol=rel_tol)


def exact_hessian(model, X, y, loss="cross_entropy", batch_size=None, eps=None):
    """The full Hessian matrix (P, P), column by column from Hessian-vector products on the unit
    vectors, symmetrised. For small models (tests, P up to a few thousand).

    Example:

        >>> import numpy as np
        >>> from lamina import diagnostics, nn
        >>> X = np.random.default_rng(0).random((64, 4), dtype=np.float32); y = (X.sum(1) > 2).astype(np.int64)
        >>> model = nn.Sequential(nn.Dense(4, 3), nn.Tanh(), nn.Dense(3, 2))   # 23 parameters
        >>> H = diagnostics.exact_hessian(model, X, y)
        >>> H.shape, bool(np.allclose(H, H.T))
        ((23, 23), True)
    """
    op = _HessianOperator(model, X, y, loss, batch_size, eps=eps)
    H = np.empty((op.n, op.n))
    e = np.zeros(op.n)
    for i in range(op.n):
        e[i] = 1.0
        H[:, i] = op(e)
        e[i] = 0.0
    return (H + H.T) / 2


# -- MC dropout ------------------------------------------------------------------------------
def mc_dropout_predict(model, X, samples=30, batch_size=256, probabilities="auto"):
    """Monte-Carlo dropout: ``samples`` forward passes with dropout left on (training mode), and
    the per-element mean and standard deviation of the outputs. ``probabilities``: True applies
    a softmax to each pass's outputs (for models that end in logits), False keeps raw outputs;
    "auto" applies it unless the model already ends in Softmax or Sigmoid. Returns (mean, std),
    each of the output's shape; std is exactly 0 for a model without dropout.

    Example:

        >>> import numpy as np
        >>> from lamina import diagnostics, nn
        >>> model = nn.Sequential(nn.Dense(4, 8), nn.Dropout(0.5, seed=0), nn.Dense(8, 2))
        >>> mean, std = diagnostics.mc_dropout_predict(model, np.ones((5, 4), np.float32), samples=10)
        >>> mean.shape, std.shape, bool(np.allclose(mean.sum(axis=1), 1.0))   # softmax probabilities
        ((5, 2), (5, 2), True)
    """
    from .nn import Sigmoid, Softmax

    model = as_sequential(model)
    samples = int(samples)
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if probabilities == "auto":
        probabilities = not (len(model) and isinstance(model.layers[-1], (Softmax, Sigmoid)))
    dtype = model_dtype(model)
    n = len(X)
    if n == 0:
        raise ValueError("mc_dropout_predict needs at least one sample")
    be = model_backend(model)
    sm = Softmax(axis=-1)
    sm.backend = be
    mean = m2 = None
    lo = 0
    for xb, _ in Batches(X, None, batch_size, be, dtype):
        mu = s2 = None
        for s in range(samples):  # Welford: exact zeros when every pass is identical
            out = model.forward_workspace(xb, True)
            if probabilities:
                out = sm.forward(out)
            out = be.to_numpy(out).astype(np.float64)  # each pass's predictions leave for the host
            if mu is None:
                mu, s2 = out, np.zeros_like(out)
            else:
                d = out - mu
                mu = mu + d / (s + 1)
                s2 += d * (out - mu)
        if mean is None:
            mean = np.empty((n,) + mu.shape[1:])
            m2 = np.empty((n,) + mu.shape[1:])
        hi = lo + len(mu)
        mean[lo:hi], m2[lo:hi] = mu, s2
        lo = hi
    std = np.sqrt(m2 / samples)
    return mean.astype(dtype), std.astype(dtype)


__all__ = ["gradient_norms", "GradientNormRecorder", "hessian_spectrum", "hessian_vector_product",
           "exact_hessian", "saddle_index", "lanczos", "tridiagonal", "central_difference_hvp", "default_hvp_eps",
           "HessianSpectrum", "mc_dropout_predict"]
