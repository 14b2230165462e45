"""Plots for the talk's experiments (optional extra: ``pip install lamina[plot]``, matplotlib).

matplotlib is imported on the first call, never by ``import lamina``. Figures are drawn with
the Agg canvas directly (``matplotlib.figure.Figure`` + ``FigureCanvasAgg``): no pyplot, no
window, and the global matplotlib backend of the caller is left alone. Every function returns
the Figure and, given ``path``, writes a PNG there.

- ``training_curves``: loss / accuracy per epoch of one or several runs (fit Histories).
- ``gradient_norms``: per-layer gradient norms over epochs (a GradientNormRecorder).
- ``filters``: the first convolution layer's learned filters as an image grid.
- ``hessian_histogram``: histogram(s) of Hessian eigenvalues.
- ``loss_vs_evaluations``: GD vs SGD: loss against gradient evaluations.
- ``bars``: one number per run (e.g. test accuracy per initialiser).
"""
from __future__ import annotations

import math
import os

import numpy as np

_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf"]


def _figure(nrows=1, ncols=1, size=(6.4, 4.0)):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - exercised only without matplotlib
        raise ImportError("lamina.plot needs matplotlib: pip install 'lamina[plot]'") from e
    fig = Figure(figsize=size, dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _finish(fig, path):
    if path is not None:
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        fig.savefig(path, format="png")
    return fig


def _runs(histories):
    """{name: history} from one history, a list of them or a dict."""
    if isinstance(histories, dict) and histories and all(isinstance(v, (list, tuple)) for v in histories.values()) \
            and "loss" in histories:
        return {"": histories}
    if isinstance(histories, dict):
        return histories
    if isinstance(histories, (list, tuple)):
        return {f"run {i}": h for i, h in enumerate(histories)}
    return {"": histories}


def training_curves(histories, path=None, metrics=("loss", "accuracy"), title=None, log_loss=False):
    """One panel per metric; one line per run. ``histories``: a fit History (or any dict of
    per-epoch lists), a list of them, or {run name: history}. Validation metrics ("val_" + m)
    are drawn dashed when present.

    Example:

        >>> import os, tempfile
        >>> import numpy as np
        >>> from lamina import plot
        >>> folder = tempfile.mkdtemp()
        >>> history = {"loss": [2.3, 1.2, 0.8], "accuracy": [0.1, 0.6, 0.8], "val_loss": [2.0, 1.3, 1.0]}
        >>> fig = plot.training_curves({"run": history}, path=os.path.join(folder, "training.png"))
        >>> len(fig.axes)
        2
    """
    runs = _runs(histories)
    metrics = [m for m in metrics if any(h.get(m) and any(v is not None for v in h.get(m)) for h in runs.values())]
    if not metrics:
        metrics = ["loss"]
    fig, axes = _figure(1, len(metrics), size=(4.2 * len(metrics), 3.4))
    for ax, m in zip(axes[0], metrics):
        for i, (name, h) in enumerate(runs.items()):
            c = _COLORS[i % len(_COLORS)]
            vals = [np.nan if v is None else v for v in h.get(m, [])]
            if vals:
                ax.plot(range(1, len(vals) + 1), vals, color=c, marker="o", ms=3, label=name or m)
            vv = [np.nan if v is None else v for v in h.get("val_" + m, []) or []]
            if vv:
                ax.plot(range(1, len(vv) + 1), vv, color=c, ls="--", label=f"{name} (val)".strip())
        ax.set_xlabel("epoch")
        ax.set_ylabel(m)
        if "loss" in m and log_loss:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


def gradient_norms(recorders, path=None, key="bias", title=None, labels=None):
    """Per-layer gradient norm (``key``: "bias" = ||dC/db||, "weight", "weight_rms", "relative")
    against epochs, log scale; one panel per recorder. ``recorders``: a GradientNormRecorder (or
    anything with ``epochs`` and ``series(key)``), or {name: recorder}. ``labels``: a list (in
    layer order) or {layer label: name} for the legend (default "layer <index in the model>").

    Example:

        >>> import os, tempfile
        >>> import numpy as np
        >>> from lamina import plot
        >>> folder = tempfile.mkdtemp()
        >>> class Recorded:   # anything with epochs and series(key), e.g. a GradientNormRecorder
        ...     epochs = [0, 1, 2]
        ...     def series(self, key):
        ...         return {"0": [1e-3, 1e-2, 1e-2], "2": [1e-1, 5e-2, 2e-2]}
        >>> fig = plot.gradient_norms(Recorded(), path=os.path.join(folder, "norms.png"))
        >>> type(fig).__name__
        'Figure'
    """
    if not isinstance(recorders, dict):
        recorders = {"": recorders}
    fig, axes = _figure(1, len(recorders), size=(4.6 * len(recorders), 3.6))
    for ax, (name, rec) in zip(axes[0], recorders.items()):
        epochs = rec.epochs
        series = rec.series(key)
        for i, (label, vals) in enumerate(series.items()):
            vals = [np.nan if v is None else v for v in vals]
            if isinstance(labels, dict):
                name_i = labels.get(label, f"layer {label}")
            elif labels is not None and i < len(labels):
                name_i = labels[i]
            else:
                name_i = f"layer {label}"
            ax.plot(epochs, vals, marker="o", ms=3, color=_COLORS[i % len(_COLORS)], label=name_i)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel({"bias": "||dC/db||", "weight": "||dC/dW||", "weight_rms": "rms dC/dW",
                       "relative": "||dC/dW|| / ||W||"}.get(key, key))
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


def filters(layer_or_weights, path=None, ncols=None, title=None, image_shape=None, cmap="gray"):
    """The filters of a Conv2D (weight (O, C, kH, kW): the first input channel of each, or the
    RGB image when C == 3) or of a Dense layer whose rows are images (``image_shape``, e.g.
    (28, 28)), as a grid of images, each scaled to its own range.

    Example:

        >>> import os, tempfile
        >>> import numpy as np
        >>> from lamina import plot
        >>> folder = tempfile.mkdtemp()
        >>> from lamina import nn
        >>> fig = plot.filters(nn.Conv2D(1, 6, 5), path=os.path.join(folder, "filters.png"))
        >>> os.path.exists(os.path.join(folder, "filters.png"))
        True
    """
    w = getattr(layer_or_weights, "weight", layer_or_weights)
    w = np.asarray(getattr(w, "data", w), dtype=np.float64)
    if w.ndim == 2:
        if image_shape is None:
            side = int(round(math.sqrt(w.shape[1])))
            if side * side != w.shape[1]:
                raise ValueError(f"a Dense weight {w.shape} needs image_shape to be drawn as images")
            image_shape = (side, side)
        imgs = w.reshape((w.shape[0],) + tuple(image_shape))
    elif w.ndim == 4:
        imgs = w.transpose(0, 2, 3, 1) if w.shape[1] == 3 else w[:, 0]
    else:
        raise ValueError(f"filters: expected a weight of 2 or 4 dimensions, got shape {w.shape}")
    n = imgs.shape[0]
    ncols = ncols or int(math.ceil(math.sqrt(n)))
    nrows = int(math.ceil(n / ncols))
    fig, axes = _figure(nrows, ncols, size=(1.1 * ncols + 0.4, 1.1 * nrows + (0.5 if title else 0.2)))
    for i, ax in enumerate(axes.ravel()):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n:
            ax.axis("off")
            continue
        img = imgs[i]
        lo, hi = float(img.min()), float(img.max())
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
        ax.imshow(img, cmap=None if img.ndim == 3 else cmap, interpolation="nearest")
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


def hessian_histogram(eigenvalues, path=None, bins=60, title=None, log_count=True, rel_tol=1e-6):
    """Histogram of Hessian eigenvalues: an array, a HessianSpectrum (its Ritz values), or
    {name: either} for several points (e.g. at initialisation and after training), overlaid.
    The legend gives each one's fraction of negative eigenvalues (``diagnostics.saddle_index``).

    Example:

        >>> import os, tempfile
        >>> import numpy as np
        >>> from lamina import plot
        >>> folder = tempfile.mkdtemp()
        >>> eigenvalues = np.random.default_rng(0).normal(size=200)
        >>> fig = plot.hessian_histogram({"start": eigenvalues, "trained": eigenvalues + 1.0}, path=os.path.join(folder, "h.png"))
        >>> type(fig).__name__
        'Figure'
    """
    from .diagnostics import saddle_index

    if not isinstance(eigenvalues, dict):
        eigenvalues = {"": eigenvalues}
    data = {k: np.asarray(getattr(v, "ritz_values", v), dtype=np.float64).ravel() for k, v in eigenvalues.items()}
    allv = np.concatenate(list(data.values())) if data else np.zeros(1)
    lo, hi = float(allv.min()), float(allv.max())
    if hi <= lo:
        lo, hi = lo - 1, hi + 1
    edges = np.linspace(lo, hi, int(bins) + 1)
    fig, axes = _figure(1, 1, size=(6.4, 3.8))
    ax = axes[0, 0]
    for i, (name, ev) in enumerate(data.items()):
        neg = saddle_index(ev, rel_tol)  # |lambda| <= rel_tol * max|lambda| counts as zero
        ax.hist(ev, bins=edges, alpha=0.55, color=_COLORS[i % len(_COLORS)],
                label=f"{name} ({neg:.1%} negative)".strip())
    ax.axvline(0.0, color="k", lw=0.8)
    if log_count:
        ax.set_yscale("log")
    ax.set_xlabel("eigenvalue of the Hessian")
    ax.set_ylabel("count")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return _finish(fig, path)


def loss_vs_evaluations(curves, path=None, title=None, xlabel="gradient evaluations (examples)",
                        ylabel="training loss", log_x=False, log_y=True):
    """{name: (evaluations, losses)}: e.g. full-batch GD vs minibatch SGD, loss against the number
    of per-example gradient evaluations.

    Example:

        >>> import os, tempfile
        >>> import numpy as np
        >>> from lamina import plot
        >>> folder = tempfile.mkdtemp()
        >>> curves = {"GD": ([0, 1000, 2000], [2.3, 1.9, 1.6]), "SGD": ([0, 1000, 2000], [2.3, 0.9, 0.5])}
        >>> fig = plot.loss_vs_evaluations(curves, path=os.path.join(folder, "curves.png"))
        >>> type(fig).__name__
        'Figure'
    """
    fig, axes = _figure(1, 1, size=(6.4, 4.0))
    ax = axes[0, 0]
    for i, (name, (x, y)) in enumerate(curves.items()):
        ax.plot(x, y, marker="o", ms=2.5, color=_COLORS[i % len(_COLORS)], label=name)
    if log_x:
        ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return _finish(fig, path)


def bars(values, path=None, title=None, ylabel=None, log=False, annotate=True):
    """{name: number} as a bar chart (None / non-finite values drawn as empty with a mark);
    saved to ``path`` when given. Returns the matplotlib Figure; ImportError without
    matplotlib (the "plot" extra).

    Example:

        >>> import os, tempfile
        >>> from lamina import plot
        >>> path = os.path.join(tempfile.mkdtemp(), "bars.png")
        >>> fig = plot.bars({"lamina": 3.1, "torch": 1.0, "other": None}, path=path)
        >>> os.path.exists(path)
        True
    """
    names = list(values)
    vals = [values[k] for k in names]
    fig, axes = _figure(1, 1, size=(max(4.0, 0.9 * len(names) + 1.5), 3.6))
    ax = axes[0, 0]
    finite = [v if v is not None and math.isfinite(v) else 0.0 for v in vals]
    ax.bar(range(len(names)), finite, color=[_COLORS[i % len(_COLORS)] for i in range(len(names))])
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    if log:
        ax.set_yscale("log")
    if annotate:
        for i, v in enumerate(vals):
            txt = "n/a" if v is None or not math.isfinite(v) else f"{v:.3g}"
            ax.annotate(txt, (i, finite[i]), ha="center", va="bottom", fontsize=7)
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")
    if title:
        ax.set_title(title)
    return _finish(fig, path)


__all__ = ["training_curves", "gradient_norms", "filters", "hessian_histogram", "loss_vs_evaluations", "bars"]
