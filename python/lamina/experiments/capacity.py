"""capacity: the talk's "representation is not prediction" (the universal approximation slide).

One hidden layer is enough to represent any function on a finite set: given enough units it fits
any labels. Fitting the training set is not predicting new data. One-hidden-layer ReLU nets
784-W-10 of growing width W are trained long (Adam) on a small training set (500
images; 200 in the fast run) until the training error stops falling; measured: training error,
test error (on 2,000 / 500 unseen images) and the gap. Beside the widest net, the same net with
dropout (p = 0.5 on the hidden units) and with weight decay (the L2 penalty wd/2 ||w||^2 added to
the cost: Adam's ``weight_decay``), trained with the same budget from the same start.
"""
from __future__ import annotations

import numpy as np

from ._common import Column, Result, begin, check_settings, finish, make_callable, mnist
from ._talk import COLORS, figure, save


def _net(width, dropout):
    from ..nn import Dense, Dropout, Flatten, ReLU, Sequential

    layers = [Flatten(), Dense(784, width), ReLU()]
    if dropout:
        layers.append(Dropout(dropout))
    return Sequential(*layers, Dense(width, 10))


def _error(model, X, y):
    return float(np.mean(model.predict(X).argmax(axis=1) != y))


def _train(width, dropout, weight_decay, cfg, X, y, Xt, yt, seed):
    import lamina

    from .. import optim

    lamina.seed(seed * 7919 + width)  # the same start for one width with and without regularisers
    model = _net(width, dropout)
    opt = optim.Adam(model.parameters(), lr=cfg["lr"], weight_decay=weight_decay)
    curve = {"epoch": [0], "train_err": [_error(model, X, y)], "test_err": [_error(model, Xt, yt)]}
    done = 0
    while done < cfg["epochs"]:
        step = min(cfg["record_every"], cfg["epochs"] - done)
        model.fit(X, y, epochs=step, batch_size=cfg["batch_size"], optimizer=opt, seed=seed * 1000 + done, verbose=0)
        done += step
        curve["epoch"].append(done)
        curve["train_err"].append(_error(model, X, y))
        curve["test_err"].append(_error(model, Xt, yt))
    params = sum(p.size for p in model.parameters())
    return curve, params


def run(fast=False, out=None, seed=0, verbose=True, settings=None):
    t0 = begin("capacity", fast, seed)
    Xtr, ytr, Xte, yte = mnist()
    cfg = dict(widths=[2, 8, 32, 128, 512] if fast else [2, 8, 32, 128, 512, 2048], n_train=200 if fast else 500,
               n_test=500 if fast else len(Xte), epochs=60 if fast else 150, record_every=5, batch_size=32,
               lr=1e-3, dropout=0.5, weight_decay=1e-2)
    cfg.update(check_settings(cfg, settings))
    n = cfg["n_train"]
    X, y = Xtr[:n], ytr[:n]
    Xt, yt = Xte[: cfg["n_test"]], yte[: cfg["n_test"]]
    widest = max(cfg["widths"])
    runs = [(w, "plain", 0.0, 0.0) for w in cfg["widths"]]
    runs += [(widest, f"dropout {cfg['dropout']:g}", cfg["dropout"], 0.0),
             (widest, f"weight decay {cfg['weight_decay']:g}", 0.0, cfg["weight_decay"])]
    rows, curves = [], {}
    for w, reg, p, wd in runs:
        c, params = _train(w, p, wd, cfg, X, y, Xt, yt, seed)
        curves[f"{w}, {reg}"] = c
        tr, te = c["train_err"][-1], c["test_err"][-1]
        rows.append({"width": w, "regulariser": reg, "params": params, "train_err": tr, "test_err": te,
                     "gap": te - tr, "best_test_err": min(c["test_err"])})
    columns = [Column("width", "hidden units"), Column("regulariser", "regulariser"), Column("params", "parameters"),
               Column("train_err", "training error", "%"), Column("test_err", "test error", "%"),
               Column("gap", "test - training", "%"), Column("best_test_err", "lowest test error seen", "%")]
    plain = [r for r in rows if r["regulariser"] == "plain"]
    wide = plain[-1]
    notes = [f"784-W-10 ReLU, Adam lr {cfg['lr']:g}, batch {cfg['batch_size']}, {cfg['epochs']} epochs on {n} "
             f"training images; test on {cfg['n_test']} unseen images; errors measured every "
             f"{cfg['record_every']} epochs.",
             f"width {wide['width']}: training error {100 * wide['train_err']:.1f}%, test error "
             f"{100 * wide['test_err']:.1f}%: it represents the training set, it does not predict as well.",
             "weight decay: Adam's L2 term (wd * w added to the gradient); dropout is off at test time."]
    result = Result("capacity", f"capacity: one hidden layer of growing width on {n} images", columns, rows, notes,
                    {"curves": curves}, {"fast": fast, "seed": seed, **cfg})

    def plot(path):
        fig, axes = figure(1, 2, size=(12.0, 4.2))
        ax = axes[0][0]
        ws = [r["width"] for r in plain]
        ax.semilogx(ws, [r["train_err"] for r in plain], "o-", color=COLORS[0], label="training error")
        ax.semilogx(ws, [r["test_err"] for r in plain], "o-", color=COLORS[1], label="test error")
        for i, r in enumerate(rows[len(plain):]):
            ax.plot([r["width"]], [r["test_err"]], "s", color=COLORS[2 + i], label=f"test error, {r['regulariser']}")
            ax.plot([r["width"]], [r["train_err"]], "^", color=COLORS[2 + i],
                    label=f"training error, {r['regulariser']}")
        ax.set(xlabel="hidden units", ylabel="error", title=f"error against width ({n} training images)",
               ylim=(0, None))
        ax.legend(fontsize=7)
        ax = axes[0][1]
        for i, (name, c) in enumerate((k, v) for k, v in curves.items() if k.startswith(f"{widest},")):
            ax.plot(c["epoch"], c["train_err"], "--", color=COLORS[i], label=f"{name}: training")
            ax.plot(c["epoch"], c["test_err"], "-", color=COLORS[i], label=f"{name}: test")
        ax.set(xlabel="epoch", ylabel="error", title=f"width {widest} during training", ylim=(0, None))
        ax.legend(fontsize=7)
        for a in axes[0]:
            a.grid(alpha=0.3)
        save(fig, path)

    return finish(result, out, [("capacity.png", plot)], verbose, t0)


make_callable(__name__)
