"""sgd: full-batch gradient descent vs minibatch SGD, loss against gradient evaluations.

An MLP 784-100-10 (ReLU, He initialisation, the same start for every run) is trained on the
8,000 training images by the talk's explicit loop (forward, loss, zero_grad, backward, step):

- GD: every step uses the gradient over all 8,000 images;
- GD + momentum 0.9;
- minibatch SGD with batches of 128 and of 16 (reshuffled every epoch).

Every method gets the same budget of per-example gradient evaluations (a number of passes over
the data); each method's learning rate is the best of a small grid by final training loss.
Measured: the full training loss against gradient evaluations (every quarter pass), the final
training loss and test accuracy, the number of parameter updates and the time spent in them.
"""
from __future__ import annotations

import math
import time

import numpy as np

from ._common import Column, Result, begin, finish, flat, make_callable, mnist


def _model(seed):
    import lamina

    from ..nn import Dense, ReLU, Sequential

    lamina.seed(seed)
    return Sequential(Dense(784, 100), ReLU(), Dense(100, 10))


def _train(method, lr, X, y, passes, checkpoints_per_pass, seed, batch_limit=None):
    """The explicit loop; returns (evaluations, losses, updates, seconds, model)."""
    from .. import losses, optim
    from ..nn import Batches, NonFiniteLossError

    batch = int(method.split("=")[1]) if method.startswith("SGD") else None  # None: full batch
    n = len(X)
    model = _model(seed)
    momentum = 0.9 if method == "GD + momentum" else 0.0
    opt = optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    loss_fn = losses.CrossEntropy()
    rng = np.random.default_rng(seed)
    evals, curve_x, curve_y, updates = 0, [0], [model.evaluate(X, y)[0]], 0
    every = n // checkpoints_per_pass
    next_ck = every
    total = passes * n
    bs = batch or n
    step_time = 0.0  # the updates only, not the loss-curve evaluations
    model.compile(opt, loss_fn)
    data = Batches(X, loss_fn.prepare_target(y, model.dtype), bs, model.be, model.dtype)
    while evals < total:
        order = rng.permutation(n) if batch else None
        for xb, yb in data.iterate(order):
            t0 = time.perf_counter()
            try:
                model.train_step(xb, yb)
            except NonFiniteLossError:  # diverged: the curve ends here
                return curve_x + [evals + len(xb)], curve_y + [float("nan")], updates + 1, step_time, model
            step_time += time.perf_counter() - t0
            updates += 1
            evals += len(xb)
            if evals >= next_ck:  # one point per checkpoint crossed (GD crosses several at once)
                curve_x.append(evals)
                curve_y.append(model.evaluate(X, y)[0])
                while next_ck <= evals:
                    next_ck += every
            if evals >= total:
                break
    return curve_x, curve_y, updates, step_time, model


def run(fast=False, out=None, seed=0, verbose=True):
    t0 = begin("sgd", fast, seed)
    Xtr, ytr, Xte, yte = mnist()
    cfg = dict(n_train=500 if fast else len(Xtr), n_test=300 if fast else len(Xte), passes=2 if fast else 10,
               checkpoints_per_pass=2 if fast else 4,
               methods=["GD", "GD + momentum", "SGD b=128", "SGD b=16"],
               lr_grid=[0.1, 1.0] if fast else [0.1, 0.3, 1.0])
    X, y = flat(Xtr[: cfg["n_train"]]), ytr[: cfg["n_train"]]
    Xt, yt = flat(Xte[: cfg["n_test"]]), yte[: cfg["n_test"]]
    rows, curves, grid = [], {}, {}
    for m in cfg["methods"]:
        best = None
        for lr in cfg["lr_grid"]:
            with np.errstate(all="ignore"):
                cx, cy, updates, secs, model = _train(m, lr, X, y, cfg["passes"], cfg["checkpoints_per_pass"], seed)
            final = cy[-1]
            grid.setdefault(m, {})[str(lr)] = final if math.isfinite(final) else None
            if math.isfinite(final) and (best is None or final < best[0]):
                best = (final, lr, cx, cy, updates, secs, model)
        if best is None:
            rows.append({"method": m, "lr": None, "loss": float("nan"), "test_acc": None})
            continue
        final, lr, cx, cy, updates, secs, model = best
        curves[f"{m} (lr {lr:g})"] = (cx, cy)
        half = next((x for x, v in zip(cx, cy) if v <= 0.5), None)
        rows.append({"method": m, "lr": lr, "loss": final, "test_acc": model.evaluate(Xt, yt)[1], "updates": updates,
                     "to_half": None if half is None else half / len(X), "seconds": secs})
    columns = [Column("method", "method"), Column("lr", "best lr", "{:g}"),
               Column("loss", f"train loss after {cfg['passes']} passes"), Column("test_acc", "test accuracy", "%"),
               Column("updates", "parameter updates"), Column("to_half", "passes to loss <= 0.5", "{:.2f}"),
               Column("seconds", "update s", "{:.2f}")]
    notes = [f"MLP 784-100-10 (ReLU, He), {cfg['n_train']} training images, a budget of {cfg['passes']} passes "
             f"({cfg['passes'] * cfg['n_train']:,} per-example gradient evaluations) per method; learning rate = the best "
             f"of {cfg['lr_grid']} by final training loss; test on {cfg['n_test']} images."]
    ok = [r for r in rows if r.get("loss") is not None and math.isfinite(r["loss"])]
    if ok:
        b = min(ok, key=lambda r: r["loss"])
        notes.append(f"lowest training loss for the same gradient evaluations: {b['method']} ({b['loss']:.3g}).")
    data = {"curves": {k: {"evaluations": v[0], "loss": v[1]} for k, v in curves.items()}, "lr_grid_final_loss": grid}
    result = Result("sgd", "sgd: full-batch GD vs minibatch SGD for the same gradient evaluations", columns, rows,
                    notes, data, {"fast": fast, "seed": seed, **cfg})

    def plot_curves(path):
        from .. import plot
        plot.loss_vs_evaluations(curves, path, title="training loss against per-example gradient evaluations")

    return finish(result, out, [("sgd_loss_vs_evaluations.png", plot_curves)], verbose, t0)


make_callable(__name__)
