"""init: does a deep MLP train at all, depending on its initialisation?

A 16-layer ReLU MLP (784, 15 hidden layers of 64 units, 10 outputs) started from each of:
normal(0, 1) weights with biases b = 1 (the talk's "typical" start), xavier, he, orthogonal
(Saxe et al., gain 1), random_walk (Sussillo & Abbott's omega for ReLU) and lsuv (Mishkin &
Matas, on 500 training images), then trained with the same budget (SGD, momentum 0.9, the same
learning rate, seed and batches). Measured: the standard deviation of the logits at
initialisation, ||dC/dW|| of the first layer over that of the last at initialisation, the loss
before and after, test accuracy, and whether it trained at all (finite loss and test accuracy
at least 50 %; chance is 10 %). A NaN/inf loss stops that run and is reported as diverged.
"""
from __future__ import annotations

import math

import numpy as np

from ._common import Column, Result, begin, dense_stack, finish, make_callable, mnist

INITS = ("normal(0,1), b=1", "xavier", "he", "orthogonal", "random_walk", "lsuv")


def _mlp(width, depth, init):
    from ..nn import ReLU

    sizes = [784] + [width] * (depth - 1) + [10]
    name = {"normal(0,1), b=1": "normal", "lsuv": "orthogonal"}.get(init, init)
    bias_one = (lambda d: d.bias.be.fill(d.bias.data, 1.0)) if init == "normal(0,1), b=1" else None
    return dense_stack(sizes, ReLU, init=name, each=bias_one)


def _setup(fast):
    """The settings and the (training, test, probe, lsuv) sets."""
    Xtr, ytr, Xte, yte = mnist()
    cfg = dict(depth=10 if fast else 16, width=32 if fast else 64, n_train=512 if fast else 8000,
               n_test=500 if fast else len(Xte), epochs=1 if fast else 5, batch_size=64, lr=0.01, momentum=0.9,
               n_lsuv=200 if fast else 500, n_probe=200 if fast else 1000)
    sets = ((Xtr[: cfg["n_train"]], ytr[: cfg["n_train"]]), (Xte[: cfg["n_test"]], yte[: cfg["n_test"]]),
            (Xtr[: cfg["n_probe"]], ytr[: cfg["n_probe"]]), Xtr[: cfg["n_lsuv"]])
    return cfg, sets


def _at_init(model, Xp, yp):
    """(logits, loss, per-layer gradient norms) of the probe set at initialisation."""
    from ..diagnostics import gradient_norms

    with np.errstate(all="ignore"):
        return model.predict(Xp), model.evaluate(Xp, yp)[0], gradient_norms(model, Xp, yp)


def _train(cfg, model, X, y, Xt, yt, seed):
    """(status, history, train loss after, test accuracy): a diverged run is reported as such."""
    from .. import optim
    from ..nn import NonFiniteLossError

    opt = optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"])
    try:
        with np.errstate(all="ignore"):
            hist = model.fit(X, y, epochs=cfg["epochs"], batch_size=cfg["batch_size"], optimizer=opt,
                             seed=seed, verbose=0)
        return "ok", hist, model.evaluate(X, y)[0], model.evaluate(Xt, yt)[1]
    except NonFiniteLossError as e:
        return f"diverged (epoch {e.epoch}, batch {e.batch})", None, float("nan"), None


def _measure(cfg, sets, seed):
    """Every initialisation, measured at init and trained: (rows, per-init series)."""
    import lamina

    from .. import init as _init

    (X, y), (Xt, yt), (Xp, yp), X_lsuv = sets
    rows, data = [], {}
    for k, init in enumerate(INITS):
        lamina.seed(seed * 1000 + k)
        model = _mlp(cfg["width"], cfg["depth"], init)
        if init == "lsuv":
            _init.lsuv(model, X_lsuv)
        logits, loss0, g = _at_init(model, Xp, yp)
        ratio = g[0]["weight"] / g[-1]["weight"] if g[-1]["weight"] else float("nan")
        status, hist, loss1, acc = _train(cfg, model, X, y, Xt, yt, seed)
        trained = status == "ok" and math.isfinite(loss1) and acc is not None and acc >= 0.5
        rows.append({"init": init, "logit_std": float(np.std(logits)) if np.all(np.isfinite(logits)) else float("inf"),
                     "grad_ratio": ratio, "loss0": loss0, "loss1": loss1, "test_acc": acc, "trained": trained,
                     "status": status})
        data[init] = {"train_loss": None if hist is None else hist["loss"],
                      "accuracy": None if hist is None else hist["accuracy"],
                      "grad_norms_init": g}
    return rows, data


def _report(cfg, fast, seed, rows, data):
    """The Result and its plots."""
    columns = [Column("init", "initialisation"), Column("logit_std", "logit std at init"),
               Column("grad_ratio", "||dC/dW1|| / ||dC/dWL|| at init"), Column("loss0", "loss at init"),
               Column("loss1", f"train loss after {cfg['epochs']} ep"), Column("test_acc", "test accuracy", "%"),
               Column("trained", "trained?"), Column("status", "run")]
    trained = [r["init"] for r in rows if r["trained"]]
    failed = [r["init"] for r in rows if not r["trained"]]
    notes = [f"{cfg['depth']}-layer ReLU MLP (hidden width {cfg['width']}), SGD lr {cfg['lr']} momentum "
             f"{cfg['momentum']}, batch {cfg['batch_size']}, {cfg['epochs']} epoch(s) on {cfg['n_train']} images; "
             f"test on {cfg['n_test']}.",
             f"trained (test accuracy >= 50%): {', '.join(trained) or 'none'}; did not: {', '.join(failed) or 'none'}."]
    best = max((r for r in rows if r["test_acc"] is not None), key=lambda r: r["test_acc"], default=None)
    if best is not None:
        notes.append(f"best test accuracy: {best['init']} ({100 * best['test_acc']:.1f}%).")
    result = Result("init", f"init: a {cfg['depth']}-layer MLP from six initialisations", columns, rows, notes, data,
                    {"fast": fast, "seed": seed, **cfg})
    return result, _plots(cfg, rows, data)


def _plots(cfg, rows, data):
    def plot_curves(path):
        from .. import plot
        plot.training_curves({k: v for k, v in data.items() if v["train_loss"] is not None}, path,
                             metrics=("train_loss", "accuracy"), title="training loss per initialisation",
                             log_loss=True)

    def plot_bars(path):
        from .. import plot
        plot.bars({r["init"]: r["test_acc"] for r in rows}, path, ylabel="test accuracy",
                  title=f"test accuracy after {cfg['epochs']} epoch(s)")

    return [("init_training.png", plot_curves), ("init_accuracy.png", plot_bars)]


def run(fast=False, out=None, seed=0, verbose=True):
    t0 = begin("init", fast, seed)
    cfg, sets = _setup(fast)
    rows, data = _measure(cfg, sets, seed)
    result, plots = _report(cfg, fast, seed, rows, data)
    return finish(result, out, plots, verbose, t0)


make_callable(__name__)
