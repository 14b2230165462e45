"""What the depth, backprop, cost and capacity experiments share: host copies of gradients, the
first/last layer gradient-norm ratio, and line plots on the Agg canvas (no pyplot, the caller's
matplotlib backend left alone). Only lamina's public API is used here."""
from __future__ import annotations

import math
import os

import numpy as np

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22", "#17becf"]
WEIGHT_LAYERS = ("Dense", "Conv2D")


def host(a):
    """A host NumPy copy of a backend array."""
    from ..backend import backend_of

    return np.array(backend_of(a).to_numpy(a), copy=True)


def weight_grad_ratio(model, X, y, loss="cross_entropy", training=True):
    """||dC/dW|| of the first weight layer (Dense or Conv2D) over that of the last, for the mean
    cost over (X, y), and the per-weight-layer norms. ``training``: batch statistics (BatchNorm
    normalises with the statistics it trains with). NaN when the last layer's norm is 0 or
    either is not finite."""
    from ..diagnostics import gradient_norms

    with np.errstate(all="ignore"):
        rows = [r for r in gradient_norms(model, X, y, loss=loss, training=training) if r["type"] in WEIGHT_LAYERS]
    norms = [r["weight"] for r in rows]
    first, last = norms[0], norms[-1]
    ok = math.isfinite(first) and math.isfinite(last) and last > 0
    return (first / last if ok else float("nan")), norms


def figure(nrows=1, ncols=1, size=(6.4, 4.0)):
    """(Figure, axes[nrows][ncols]) on the Agg canvas; ImportError naming the extra without
    matplotlib (``finish`` then notes the plot as not written)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError("the experiments' plots need matplotlib: pip install 'lamina[plot]'") from e
    fig = Figure(figsize=size, dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def save(fig, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, format="png")


def finite_or_nan(values):
    """Floats with None and non-finite values as NaN (matplotlib leaves a gap there)."""
    out = []
    for v in values:
        f = float("nan") if v is None else float(v)
        out.append(f if math.isfinite(f) else float("nan"))
    return out
