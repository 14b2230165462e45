"""saddle_free: escaping the saddle at zero. Gradient descent, momentum SGD, Newton and saddle-free Newton.

Model: 4x4 average pooling of the image (49 inputs, computed once), Dense 49-16, tanh, Dense
16-10 (970 parameters, float64 on the NumPy backend). It starts near the saddle point at zero:
Xavier weights scaled by 1e-3, biases zero. At zero the two weight matrices only couple to each
other, so the Hessian has symmetric pairs of eigenvalues, +-sigma, and the point is a saddle.
Four methods train it on the same 2,000 training images with the same budget of per-example
gradient evaluations:

- GD: full-batch gradient descent, with the learning rate that is best on a grid (by final
  training loss);
- SGD + momentum 0.9, batches of 100, with the learning rate that is best on a grid;
- saddle-free Newton (``lamina.optim.SaddleFreeNewton`` with its defaults: k = 20 Lanczos
  steps, damping 1e-3, line search from step length 1), full batch;
- Newton (signed H): the same Krylov machinery with curvature="signed" (H in place of |H|), no line
  search. This is the method that saddles attract.

Costs are counted in passes: per-example gradient evaluations / 2,000. A Hessian-vector
product (central differences of two gradients) counts as two, and every closure call counts as
one, line-search trials included. Measured for each method: the training loss against passes
(the loss at the weights before each step; for SGD, the full training loss after each pass),
the passes needed to bring the loss down to 1.0 (the escape from the saddle), the final
training loss and test accuracy, and, along each trajectory at a few checkpoints, the whole
Hessian spectrum of the mean cross-entropy over 1,000 of the training images
(``diagnostics.hessian_spectrum(full=True)``): the saddle index (the fraction of negative
eigenvalues) and lambda_min.
"""
from __future__ import annotations

import math
import time

import numpy as np

from ._common import Column, Result, begin, finish, make_callable, mnist

_DTYPE = np.float64


def _model(inputs, hidden, init_scale, seed):
    import lamina

    from ..nn import Dense, Sequential, Tanh

    lamina.seed(seed)
    model = Sequential(Dense(inputs, hidden, init="xavier"), Tanh(), Dense(hidden, 10, init="xavier"))
    model.astype(_DTYPE).to("numpy")
    for layer in (model[0], model[2]):
        layer.weight.assign(layer.weight.numpy() * init_scale)
        layer.bias.assign(np.zeros(layer.bias.shape))
    return model


def _pooled(X, pool):
    from ..nn import AvgPool2D, Flatten, Sequential

    return np.ascontiguousarray(Sequential(AvgPool2D(pool), Flatten()).predict(X), dtype=_DTYPE)


def _optimizer(method, setting, params, cfg, n):
    """(the optimiser of ``method`` at ``setting``, its batch size)."""
    from .. import optim

    if method in ("GD", "SGD"):
        opt = optim.SGD(params, lr=setting, momentum=cfg["momentum"] if method == "SGD" else 0.0)
        return opt, cfg["sgd_batch"] if method == "SGD" else n
    opt = optim.SaddleFreeNewton(params, **({} if method == "SFN" else {"curvature": "signed", "line_search": False}))
    return opt, n


class _Trajectory:
    """One run's record: the loss curve (passes, loss), the parameter snapshots at the
    checkpoints, the steps, the evaluations, the update seconds and SFN's Ritz extremes."""

    def __init__(self, n, checkpoints, params):
        self.n, self.checkpoints, self.params = n, list(checkpoints), params
        self.evals, self.steps, self.seconds, self.diverged = 0, 0, 0.0, False
        self.xs, self.ys, self.snaps, self.ritz = [], [], {}, []

    def snapshot(self):
        while self.checkpoints and self.evals >= self.checkpoints[0] * self.n:
            self.checkpoints.pop(0)
            self.snaps[self.evals / self.n] = [p.numpy() for p in self.params]

    def point(self, loss):
        self.xs.append(self.evals / self.n)
        self.ys.append(loss)


def _step(t, model, opt, xb, yb, full_batch):
    """One train_step into the trajectory; False when the loss was not finite."""
    from ..nn import NonFiniteLossError

    t.snapshot()
    calls = getattr(opt, "closure_calls", 0)
    t0 = time.perf_counter()
    try:
        lval, _ = model.train_step(xb, yb)
    except NonFiniteLossError:
        t.point(float("nan"))
        t.diverged = True
        return False
    t.seconds += time.perf_counter() - t0
    if full_batch:
        t.point(lval)
    t.evals += (opt.closure_calls - calls) * len(xb) if hasattr(opt, "closure_calls") else len(xb)
    t.steps += 1
    if getattr(opt, "last_step", None) is not None and len(opt.last_step["ritz_values"]):
        r = opt.last_step["ritz_values"]
        t.ritz.append((t.evals / t.n, float(r[0]), float(r[-1])))
    return True


def _train(method, setting, X, y, cfg, seed):
    """One run within the budget. Returns a dict: the curve (passes, loss), the parameter
    snapshots at the checkpoints {passes: [arrays]}, steps, closure calls per step (SFN and
    Newton), seconds, the model, and SFN's per-step Krylov Ritz extremes."""
    from .. import losses
    from ..nn import Batches

    n = len(X)
    model = _model(X.shape[1], cfg["hidden"], cfg["init_scale"], seed)
    params = model.parameters()
    opt, batch = _optimizer(method, setting, params, cfg, n)
    loss_fn = losses.CrossEntropy()
    model.compile(opt, loss_fn)
    data = Batches(X, loss_fn.prepare_target(y, _DTYPE), batch, model.be, _DTYPE)
    rng = np.random.default_rng(seed)
    budget = cfg["passes"] * n
    t = _Trajectory(n, cfg["checkpoints"], params)
    while t.evals < budget and not t.diverged:
        order = rng.permutation(n) if batch < n else None
        for xb, yb in data.iterate(order):
            if not _step(t, model, opt, xb, yb, batch == n) or t.evals >= budget:
                break
        if batch < n and not t.diverged:  # SGD: the full training loss once per pass (not counted)
            t.point(model.evaluate(X, y)[0])
    if not t.diverged:
        final = model.evaluate(X, y)[0]
        if batch == n:
            t.point(final)
        t.snapshot()
        if t.evals / n not in t.snaps:
            t.snaps[t.evals / n] = [p.numpy() for p in params]
    return {"x": t.xs, "y": t.ys, "snaps": t.snaps, "end": [p.numpy() for p in params], "steps": t.steps,
            "seconds": t.seconds, "model": model,
            "evals": t.evals / n, "calls_per_step": getattr(opt, "closure_calls_per_step", None), "ritz": t.ritz,
            "final": t.ys[-1]}


def _setup(fast):
    """The settings, the (training, test, Hessian) sets and the methods."""
    Xtr, ytr, Xte, yte = mnist()
    cfg = dict(pool=7 if fast else 4, hidden=4 if fast else 16, n_train=300 if fast else 2000,
               n_test=300 if fast else len(Xte), n_hessian=150 if fast else 1000, init_scale=1e-3,
               passes=200 if fast else 1500, checkpoints=[0, 100] if fast else [0, 100, 300, 800],
               momentum=0.9, sgd_batch=100, gd_lr_grid=[1.0, 3.0] if fast else [0.3, 1.0, 3.0, 10.0],
               sgd_lr_grid=[0.1, 0.3] if fast else [0.03, 0.1, 0.3, 1.0, 3.0], escape_loss=1.0, rel_tol=1e-6)
    X, y = _pooled(Xtr[: cfg["n_train"]], cfg["pool"]), ytr[: cfg["n_train"]]
    Xt, yt = _pooled(Xte[: cfg["n_test"]], cfg["pool"]), yte[: cfg["n_test"]]
    sets = ((X, y), (Xt, yt), (X[: cfg["n_hessian"]], y[: cfg["n_hessian"]]))
    methods = [("GD", "GD", cfg["gd_lr_grid"]),
               ("SGD", f"SGD + momentum {cfg['momentum']:g} (batch {cfg['sgd_batch']})", cfg["sgd_lr_grid"]),
               ("SFN", "saddle-free Newton", [None]), ("Newton", "Newton (signed H)", [None])]
    return cfg, sets, methods


def _best(key, label, settings, X, y, cfg, seed, grid):
    """(setting, run) of the lowest final training loss over ``settings``; None if all diverged."""
    best = None
    for s in settings:
        with np.errstate(all="ignore"):
            r = _train(key, s, X, y, cfg, seed)
        if s is not None:
            grid.setdefault(label, {})[f"{s:g}"] = r["final"] if math.isfinite(r["final"]) else None
        if math.isfinite(r["final"]) and (best is None or r["final"] < best[1]["final"]):
            best = (s, r)
    return best


def _spectra_along(r, Xh, yh, cfg, spectrum_at):
    """[(passes, HessianSpectrum)] at each checkpoint of run ``r`` (spectra cached by point)."""
    from ..diagnostics import hessian_spectrum

    model, points = r["model"], []
    for passes, values in sorted(r["snaps"].items()):
        at = b"".join(v.tobytes() for v in values)  # (every run starts at the same point)
        if at not in spectrum_at:
            for p, v in zip(model.parameters(), values):
                p.assign(v)
            spectrum_at[at] = hessian_spectrum(model, Xh, yh, full=True, rel_tol=cfg["rel_tol"])
        points.append((passes, spectrum_at[at]))
    return points


def _measure(cfg, sets, methods, seed):
    """Every method's best run and its spectra: (rows, the series for the data and the plots)."""
    (X, y), (Xt, yt), (Xh, yh) = sets
    rows, spectrum_at = [], {}
    series = {"curves": {}, "index_curves": {}, "spectra": {}, "grid": {}, "ritz": {}}
    for key, label, settings in methods:
        best = _best(key, label, settings, X, y, cfg, seed, series["grid"])
        if best is None:
            rows.append({"method": label, "setting": "diverged at every lr", "loss": float("nan")})
            continue
        s, r = best
        model = r["model"]
        points = _spectra_along(r, Xh, yh, cfg, spectrum_at)  # (of the best setting's trajectory)
        for p, v in zip(model.parameters(), r["end"]):
            p.assign(v)
        test_acc = model.evaluate(Xt, yt)[1]
        escape = next((x for x, v in zip(r["x"], r["y"]) if v <= cfg["escape_loss"]), None)
        name = label if s is None else f"{label}, lr {s:g}"
        series["curves"][name] = (r["x"], r["y"])
        series["index_curves"][name] = ([p for p, _ in points], [sp.saddle_index for _, sp in points])
        series["spectra"][key] = {f"{p:g}": sp.ritz_values for p, sp in points}
        if r["ritz"]:
            series["ritz"][key] = r["ritz"]
        start, end = points[0][1], points[-1][1]
        rows.append({"method": label, "setting": "defaults" if s is None else f"lr {s:g}", "loss": r["final"],
                     "test_acc": test_acc, "escape": escape, "steps": r["steps"], "calls": r["calls_per_step"],
                     "index0": start.saddle_index, "index": end.saddle_index, "lambda_min": end.lambda_min,
                     "grad_norm": end.grad_norm, "passes": r["evals"], "seconds": r["seconds"]})
    return rows, series


def _notes(cfg, n_params, rows):
    notes = [f"{n_params} parameters (float64, NumPy backend) started at {cfg['init_scale']:g} x Xavier weights, zero "
             f"biases; {cfg['n_train']} training images, a budget of {cfg['passes']} passes (per-example gradient "
             f"evaluations / {cfg['n_train']}; a Hessian-vector product counts as two) per method; GD lr from "
             f"{cfg['gd_lr_grid']}, SGD lr from {cfg['sgd_lr_grid']} (best final training loss); saddle-free Newton "
             "and Newton with SaddleFreeNewton's defaults, untuned; test on "
             f"{cfg['n_test']} images; spectra of the full Hessian over {cfg['n_hessian']} training images."]
    ok = [r for r in rows if r.get("loss") is not None and math.isfinite(r["loss"])]
    if not ok:
        return notes
    b = min(ok, key=lambda r: r["loss"])
    notes.append(f"lowest training loss for the budget: {b['method']} ({b['loss']:.3g}).")
    esc = [r for r in ok if r.get("escape") is not None]
    if esc:
        e = min(esc, key=lambda r: r["escape"])
        notes.append(f"fastest escape (loss <= {cfg['escape_loss']:g}): {e['method']} after {e['escape']:.0f} "
                     "passes; " + "; ".join(f"{r['method']}: "
                                            + ("never" if r.get("escape") is None else f"{r['escape']:.0f}")
                                            for r in ok if r is not e) + ".")
    return notes


def _report(cfg, fast, seed, n_params, rows, series):
    """The Result and its plots."""
    columns = [Column("method", "method"), Column("setting", "setting"),
               Column("loss", f"train loss after {cfg['passes']} passes"), Column("test_acc", "test accuracy", "%"),
               Column("escape", f"passes to loss <= {cfg['escape_loss']:g}", "{:.0f}"),
               Column("steps", "steps"), Column("calls", "closure calls / step", "{:.1f}"),
               Column("index0", "saddle index at start", "%"), Column("index", "saddle index at end", "%"),
               Column("lambda_min", "lambda_min at end", "{:.3g}"), Column("grad_norm", "||grad|| at end", "{:.2g}"),
               Column("seconds", "update s", "{:.1f}")]
    curves, index_curves, spectra = series["curves"], series["index_curves"], series["spectra"]
    data = {"curves": {k: {"passes": v[0], "loss": v[1]} for k, v in curves.items()},
            "saddle_index": {k: {"passes": v[0], "index": v[1]} for k, v in index_curves.items()},
            "spectra": spectra, "lr_grid_final_loss": series["grid"],
            "krylov_ritz_extremes": {k: [{"passes": p, "min": a, "max": b} for p, a, b in v]
                                     for k, v in series["ritz"].items()}}
    result = Result("saddle_free", "saddle_free: GD, momentum SGD, Newton and saddle-free Newton from near the saddle "
                    "at zero", columns, rows, _notes(cfg, n_params, rows), data,
                    {"fast": fast, "seed": seed, "n_params": n_params, **cfg})
    return result, _plots(curves, index_curves, spectra)


def _plots(curves, index_curves, spectra):
    def plot_loss(path):
        from .. import plot
        plot.loss_vs_evaluations(curves, path, xlabel="passes (gradient evaluations / training set; HVP = 2)",
                                 title="training loss from near the saddle at zero")

    def plot_index(path):
        from .. import plot
        plot.loss_vs_evaluations(index_curves, path, xlabel="passes (gradient evaluations / training set; HVP = 2)",
                                 ylabel="fraction of negative Hessian eigenvalues", log_y=False,
                                 title="saddle index along each trajectory")

    def plot_spectra(path):
        from .. import plot
        ends = {f"{k} at {max(v, key=float)} passes": v[max(v, key=float)] for k, v in spectra.items()}
        first = next(iter(spectra.values()), None)
        if first:
            ends = {"start": first[min(first, key=float)], **ends}
        plot.hessian_histogram(ends, path, title="Hessian eigenvalues at the start and at the end of each run")

    return [("saddle_free_loss.png", plot_loss), ("saddle_free_index.png", plot_index),
            ("saddle_free_spectra.png", plot_spectra)]


def run(fast=False, out=None, seed=0, verbose=True):
    t0 = begin("saddle_free", fast, seed)
    cfg, sets, methods = _setup(fast)
    rows, series = _measure(cfg, sets, methods, seed)
    n_params = sum(p.size for p in _model(sets[0][0].shape[1], cfg["hidden"], 1.0, seed).parameters())
    result, plots = _report(cfg, fast, seed, n_params, rows, series)
    return finish(result, out, plots, verbose, t0)


make_callable(__name__)
