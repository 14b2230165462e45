"""saddle: the Hessian's spectrum of a small network, at initialisation and during training.

Model: 4x4 average pooling of the image (7x7 = 49 inputs), Dense 49-16, tanh, Dense 16-10
(970 parameters; tanh keeps the cost smooth so the Hessian exists everywhere). At several points
of a minibatch-SGD run (epoch 0 = initialisation) the whole Hessian spectrum of the mean
cross-entropy over 1,000 training images is computed (Lanczos with as many steps as parameters
on float64 finite-difference Hessian-vector products: ``lamina.diagnostics.hessian_spectrum``).
Measured: loss and gradient norm, lambda_min and lambda_max, the saddle index (fraction of
negative eigenvalues, |lambda| <= 1e-6 max|lambda| counted as zero), the fraction of clearly
negative ones (lambda < -1e-3 lambda_max), and the k = 20 extreme eigenvalues from a 60-step
Lanczos run to show that a short run finds the ends of the spectrum.
"""
from __future__ import annotations

import numpy as np

from ._common import Column, Result, begin, finish, make_callable, mnist


def _model(pool, hidden):
    from ..nn import AvgPool2D, Dense, Flatten, Sequential, Tanh

    side = 28 // pool
    return Sequential(AvgPool2D(pool), Flatten(), Dense(side * side, hidden, init="xavier"), Tanh(),
                      Dense(hidden, 10, init="xavier"))


def _setup(fast, seed):
    """The settings, the training and Hessian sets, the model and its optimiser."""
    import lamina

    from .. import optim

    Xtr, ytr, Xte, yte = mnist()
    cfg = dict(pool=7 if fast else 4, hidden=4 if fast else 16, n_train=500 if fast else len(Xtr),
               n_hessian=200 if fast else 1000, checkpoints=[0, 1] if fast else [0, 1, 2, 5, 10, 20],
               batch_size=32, lr=0.1, momentum=0.9, k=20, lanczos_steps=60, rel_tol=1e-6, clear_tol=1e-3)
    sets = ((Xtr[: cfg["n_train"]], ytr[: cfg["n_train"]]), (Xtr[: cfg["n_hessian"]], ytr[: cfg["n_hessian"]]),
            (Xte, yte))
    lamina.seed(seed)
    model = _model(cfg["pool"], cfg["hidden"])
    opt = optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"])
    return cfg, sets, model, opt


def _measure(cfg, sets, model, opt, seed):
    """Training to each checkpoint, the spectra there: (rows, spectra by epoch)."""
    from ..diagnostics import hessian_spectrum

    (X, y), (Xh, yh), (Xte, yte) = sets
    rows, spectra, done = [], {}, 0
    for ep in cfg["checkpoints"]:
        if ep > done:
            model.fit(X, y, epochs=ep, initial_epoch=done, batch_size=cfg["batch_size"], optimizer=opt, seed=seed,
                      verbose=0)
            done = ep
        sp = hessian_spectrum(model, Xh, yh, full=True, rel_tol=cfg["rel_tol"])
        short = hessian_spectrum(model, Xh, yh, k=cfg["k"], steps=cfg["lanczos_steps"], seed=seed + 1)
        ev = sp.ritz_values
        clear = float(np.count_nonzero(ev < -cfg["clear_tol"] * sp.lambda_max) / ev.size)
        rows.append({"epoch": ep, "loss": sp.loss, "grad_norm": sp.grad_norm, "lambda_min": sp.lambda_min,
                     "lambda_max": sp.lambda_max, "index": sp.saddle_index, "clear": clear,
                     "short_min": float(short.eigenvalues[0]), "short_max": float(short.eigenvalues[-1]),
                     "test_acc": model.evaluate(Xte, yte)[1]})
        spectra[ep] = ev
    return rows, spectra


def _report(cfg, fast, seed, n_params, rows, spectra):
    """The Result and its plots."""
    columns = [Column("epoch", "epoch"), Column("loss", "loss (Hessian set)"), Column("grad_norm", "||grad||"),
               Column("lambda_min", "lambda_min"), Column("lambda_max", "lambda_max"),
               Column("index", "negative eigenvalues", "%"), Column("clear", "< -1e-3 lambda_max", "%"),
               Column("short_min", f"lambda_min ({cfg['lanczos_steps']}-step Lanczos)"),
               Column("short_max", f"lambda_max ({cfg['lanczos_steps']}-step Lanczos)"),
               Column("test_acc", "test accuracy", "%")]
    first, last = rows[0], rows[-1]
    notes = [f"{n_params} parameters; full spectrum (Lanczos, {n_params} steps) of the mean cross-entropy over "
             f"{cfg['n_hessian']} training images; SGD lr {cfg['lr']} momentum {cfg['momentum']} batch "
             f"{cfg['batch_size']} on {cfg['n_train']} images.",
             f"fraction of negative eigenvalues: {100 * first['index']:.1f}% at initialisation, {100 * last['index']:.1f}% "
             f"after {last['epoch']} epoch(s) (loss {first['loss']:.3g} -> {last['loss']:.3g}); lambda_min/lambda_max "
             f"{first['lambda_min'] / first['lambda_max']:.3g} -> {last['lambda_min'] / last['lambda_max']:.3g}.",
             "the short Lanczos run's extreme eigenvalues agree with the full spectrum's to "
             f"{max(abs(r['short_min'] - r['lambda_min']) + abs(r['short_max'] - r['lambda_max']) for r in rows):.2g} "
             "(largest absolute difference over the checkpoints)."]
    data = {"spectra": {str(k): v for k, v in spectra.items()}}
    result = Result("saddle", "saddle: Hessian spectrum of a small tanh network during training", columns, rows,
                    notes, data, {"fast": fast, "seed": seed, "n_params": n_params, **cfg})
    return result, _plots(cfg, rows, spectra)


def _plots(cfg, rows, spectra):
    def plot_hist(path):
        from .. import plot
        keys = [cfg["checkpoints"][0], cfg["checkpoints"][-1]]
        plot.hessian_histogram({f"epoch {k}": spectra[k] for k in keys}, path,
                               title="Hessian eigenvalues at initialisation and after training")

    def plot_index(path):
        from .. import plot
        plot.loss_vs_evaluations({"saddle index": ([r["loss"] for r in rows], [r["index"] for r in rows])}, path,
                                 xlabel="loss", ylabel="fraction of negative eigenvalues", log_y=False,
                                 title="saddle index against loss along training")

    return [("saddle_hessian_hist.png", plot_hist), ("saddle_index.png", plot_index)]


def run(fast=False, out=None, seed=0, verbose=True):
    t0 = begin("saddle", fast, seed)
    cfg, sets, model, opt = _setup(fast, seed)
    rows, spectra = _measure(cfg, sets, model, opt, seed)
    result, plots = _report(cfg, fast, seed, sum(p.size for p in model.parameters()), rows, spectra)
    return finish(result, out, plots, verbose, t0)


make_callable(__name__)
