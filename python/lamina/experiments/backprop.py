"""backprop: the talk's "backpropagation gives the gradient at the cost of about two forward passes
regardless of the architecture"; finite differences cost two forward passes per parameter.

MLPs (784-H-H-10, tanh) and CNNs (two 5x5 convolutions with C and 2C channels, tanh, 2x2 average
pools, one Dense layer) of growing size, on a batch of 64 MNIST images with the mean
cross-entropy. For each, timed on the default (native, float32) backend:

- one forward pass (forward + cost): the unit of cost;
- the whole gradient by backpropagation (forward, cost, backward): its time in forward passes;
- central finite differences dC/dw_i ~ (C(w + h e_i) - C(w - h e_i)) / 2h on a random sample of
  the parameters: the time per parameter, times the number of parameters P = the time of the
  whole gradient this way, in forward passes (~2P);

and, on the same weights in float64 on the numpy backend (where h = 1e-6 leaves the central
difference's error near 1e-10) and the first 8 images of the batch, the agreement
||g_fd - g_bp|| / ||g_bp|| over a random sample of the coordinates.

Times are taken on ``threads`` threads (1: the count is restored afterwards) as medians of
interleaved rounds (forward, backprop, finite differences, forward, ...): a load change hits all,
where the idle waits of threads on a shared machine would not; the ratios are the result, not
the seconds.
"""
from __future__ import annotations

import time

import numpy as np

from ._common import Column, Result, begin, check_settings, finish, make_callable, mnist
from ._talk import COLORS, figure, host, save


def mlp(hidden):
    from ..nn import Dense, Flatten, Sequential, Tanh

    return Sequential(Flatten(), Dense(784, hidden, init="xavier"), Tanh(), Dense(hidden, hidden, init="xavier"),
                      Tanh(), Dense(hidden, 10, init="xavier"))


def cnn(channels):
    from ..nn import AvgPool2D, Conv2D, Dense, Flatten, Sequential, Tanh

    c = channels
    return Sequential(Conv2D(1, c, 5, init="xavier"), Tanh(), AvgPool2D(2),        # 28 -> 24 -> 12
                      Conv2D(c, 2 * c, 5, init="xavier"), Tanh(), AvgPool2D(2),    # 12 -> 8 -> 4
                      Flatten(), Dense(2 * c * 16, 10, init="xavier"))


class _Probe:
    """The cost and its gradient of one model on one batch, by the model's public API."""

    def __init__(self, model, X, y):
        from .. import losses

        self.model, self.X, self.y = model, X, y
        self.loss = losses.CrossEntropy()
        self.params = model.parameters()

    def cost(self):
        """One forward pass and the cost."""
        return self.loss(self.model.forward(self.X), self.y)[0]

    def gradient(self):
        """Backpropagation: forward, cost, backward; the gradient of every parameter, flattened."""
        self.model.zero_grad()
        out = self.model.forward(self.X, training=True)
        _, g = self.loss(out, self.y)
        self.model.backward(g)
        return np.concatenate([host(p.grad).ravel() for p in self.params])

    def finite_differences(self, coords, h, times=None):
        """Central differences for the flat parameter indices ``coords`` (two forward passes each).
        A host backend's parameter is written in place (``data`` is its NumPy array: the
        perturbation costs one store, as in the talk's count); another backend's through
        ``assign`` (a copy of the whole array per change). ``times``: a list that receives the
        seconds each coordinate took."""
        offsets = np.cumsum([0] + [p.size for p in self.params])
        owners = np.searchsorted(offsets, coords, side="right") - 1  # the parameter of each coordinate
        flat = [p.data.reshape(-1) if type(p.data) is np.ndarray and p.data.flags.c_contiguous else None
                for p in self.params]  # a host backend's values, written in place
        out = np.empty(len(coords))
        for k, (i, j) in enumerate(zip(coords.tolist(), owners.tolist())):
            t0 = time.perf_counter()
            p, local, w = self.params[j], i - int(offsets[j]), flat[j]
            values = None
            if w is None:
                values = host(p.data)
                w = values.reshape(-1)
            w0 = float(w[local])
            w[local] = w0 + h
            if values is not None:
                p.assign(values)
            up = self.cost()
            w[local] = w0 - h
            if values is not None:
                p.assign(values)
            down = self.cost()
            w[local] = w0
            if values is not None:
                p.assign(values)
            out[k] = (up - down) / (2 * h)
            if times is not None:
                times.append(time.perf_counter() - t0)
        return out


def _median_time(fn, repeats):
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)), ts


def _agreement(model64, X, y, cfg, rng):
    """||g_fd - g_bp|| / ||g_bp|| on a random sample of coordinates, in float64."""
    n = cfg["agree_batch"]
    probe = _Probe(model64, X[:n].astype(np.float64), y[:n])
    n_params = sum(p.size for p in probe.params)
    coords = np.sort(rng.choice(n_params, size=min(n_params, cfg["agree_coords"]), replace=False))
    g_bp = probe.gradient()[coords]
    g_fd = probe.finite_differences(coords, cfg["h"])
    return float(np.linalg.norm(g_fd - g_bp) / max(np.linalg.norm(g_bp), 1e-300)), len(coords)


def _measure(model, X, y, cfg, rng):
    probe = _Probe(model, X, y)
    n_params = sum(p.size for p in probe.params)
    probe.gradient()  # warm caches and workspaces before timing
    k = min(n_params, cfg["fd_coords"])
    chunks = np.array_split(np.sort(rng.choice(n_params, size=k, replace=False)), cfg["repeats"])
    t_fwd, t_bp, t_fd = [], [], []
    for chunk in chunks:  # interleaved rounds: a load change hits all three alike
        t_fwd.append(_median_time(probe.cost, 3)[0])
        t_bp.append(_median_time(probe.gradient, 3)[0])
        probe.finite_differences(chunk, cfg["h"], times=t_fd)  # float32: timed only, per coordinate
    fwd, bp = float(np.median(t_fwd)), float(np.median(t_bp))
    fd_per_param = float(np.median(t_fd))  # a median as the others are: spikes of load left out
    return {"params": n_params, "fwd_ms": 1e3 * fwd, "bp_ms": 1e3 * bp, "bp_passes": bp / fwd,
            "fd_s": fd_per_param * n_params, "fd_passes": fd_per_param * n_params / fwd,
            "fd_per_param_passes": fd_per_param / fwd, "speedup": fd_per_param * n_params / bp,
            "fd_coords": k}, {"fwd_s": t_fwd, "bp_s": t_bp, "fd_per_param_s": t_fd}


def _run_nets(cfg, Xtr, ytr, seed):
    import lamina

    X, y = Xtr[: cfg["batch"]], ytr[: cfg["batch"]]
    rng = np.random.default_rng(seed)
    rows, timings = [], {}
    nets = [("MLP", f"784-{h}-{h}-10", lambda h=h: mlp(h)) for h in cfg["mlp_hidden"]]
    nets += [("CNN", f"conv {c}-{2 * c}", lambda c=c: cnn(c)) for c in cfg["cnn_channels"]]
    for k, (kind, name, build) in enumerate(nets):
        lamina.seed(seed * 1000 + k)
        row, t = _measure(build(), X, y, cfg, rng)
        lamina.seed(seed * 1000 + k)  # the same weights again, in float64 on the numpy backend
        row["rel_err"], row["agree_coords"] = _agreement(build().astype(np.float64).to("numpy"), X, y, cfg, rng)
        rows.append({"net": kind, "shape": name, **row})
        timings[name] = t
    return rows, timings


def _plot(rows, path):
    """The cost of one gradient in forward passes (left) and the agreement (right) against P."""
    fig, axes = figure(1, 2, size=(12.0, 4.2))
    for i, kind in enumerate(("MLP", "CNN")):
        sel = [r for r in rows if r["net"] == kind]
        if not sel:
            continue
        P = [r["params"] for r in sel]
        axes[0][0].loglog(P, [r["fd_passes"] for r in sel], "o-", color=COLORS[i],
                          label=f"{kind}: finite differences")
        axes[0][0].loglog(P, [r["bp_passes"] for r in sel], "s--", color=COLORS[i], label=f"{kind}: backprop")
        axes[0][1].loglog(P, [r["rel_err"] for r in sel], "o-", color=COLORS[i], label=kind)
    allp = sorted(r["params"] for r in rows)
    axes[0][0].loglog(allp, [2 * p for p in allp], ":", color="gray", label="2P")
    axes[0][0].set(xlabel="parameters P", ylabel="cost of one gradient (forward passes)",
                   title="time per gradient, in forward passes")
    axes[0][1].set(xlabel="parameters P", ylabel="||g_fd - g_bp|| / ||g_bp||", title="agreement (float64)")
    for ax in axes[0]:
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    save(fig, path)


def run(fast=False, out=None, seed=0, verbose=True, settings=None):
    import lamina

    t0 = begin("backprop", fast, seed)
    Xtr, ytr, _, _ = mnist()
    cfg = dict(mlp_hidden=[4, 32, 256] if fast else [4, 16, 64, 256, 1024],
               cnn_channels=[2, 8] if fast else [2, 4, 8, 16, 32], batch=64, h=1e-6,
               fd_coords=150 if fast else 400, agree_coords=20 if fast else 60, agree_batch=8,
               repeats=5 if fast else 9, threads=1)
    cfg.update(check_settings(cfg, settings))
    threads = lamina.get_num_threads()
    try:
        if cfg["threads"]:
            lamina.set_num_threads(cfg["threads"])
        rows, timings = _run_nets(cfg, Xtr, ytr, seed)
    finally:
        lamina.set_num_threads(threads)
    columns = [Column("net", "net"), Column("shape", "layers"), Column("params", "parameters P"),
               Column("fwd_ms", "forward ms", "{:.3g}"), Column("bp_ms", "backprop ms", "{:.3g}"),
               Column("bp_passes", "backprop in forward passes", "{:.2f}"),
               Column("fd_passes", "finite differences in forward passes", "{:.3g}"),
               Column("fd_per_param_passes", "FD passes per parameter", "{:.2f}"),
               Column("speedup", "FD time / backprop time", "{:.3g}"), Column("fd_coords", "FD coordinates timed"),
               Column("rel_err", "||g_fd - g_bp|| / ||g_bp|| (float64)", "{:.2g}"),
               Column("agree_coords", "coordinates compared")]
    bp = [r["bp_passes"] for r in rows]
    notes = [f"a batch of {cfg['batch']} images, mean cross-entropy; times on the native backend (float32, "
             f"{cfg['threads']} thread(s)): medians "
             f"of {cfg['repeats']} interleaved rounds (each the median of 3 calls, then finite differences on a share "
             f"of up to {cfg['fd_coords']} random coordinates, scaled to all P); agreement in float64 (numpy backend, "
             f"h = {cfg['h']:g}, the first {cfg['agree_batch']} images) on up to {cfg['agree_coords']} random "
             f"coordinates.",
             f"backpropagation cost {min(bp):.2f}-{max(bp):.2f} forward passes for P from "
             f"{min(r['params'] for r in rows):,} to {max(r['params'] for r in rows):,}; finite differences "
             f"~2 per parameter ({min(r['fd_per_param_passes'] for r in rows):.2f}-"
             f"{max(r['fd_per_param_passes'] for r in rows):.2f})."]
    result = Result("backprop", "backprop: the gradient by backpropagation vs finite differences", columns, rows, notes,
                    {"timings": timings}, {"fast": fast, "seed": seed, **cfg})

    return finish(result, out, [("backprop.png", lambda path: _plot(rows, path))], verbose, t0)


make_callable(__name__)
