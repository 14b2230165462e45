"""transfer: features learned on digits 0-4, reused for digits 5-9 with few labels (Oquab et al.).

A small CNN (conv 8@5x5, ReLU, max-pool 2, conv 16@5x5, ReLU, max-pool 2, dense 256-64, ReLU,
dense 64-5) is trained on the digits 0-4 of the training split. Then, for the digits 5-9 with
only a few labelled images per class:

- from scratch: the target network (the source's first layers up to the 64-unit ReLU, plus new
  adaptation layers FCa 64-32, ReLU, FCb 32-5) randomly initialised and trained on the few labels;
- transfer (frozen): the same network with the first layers copied from the source and frozen;
  only FCa/FCb are trained;
- transfer + fine-tune: the frozen model above, then every layer trained for as many epochs again,
  the transferred ones at 0.1x the learning rate (``fine_tune(lr_scale=0.1)``).

Measured over seeds: test accuracy on the held-out digits 5-9, trainable parameters, training
time. Plot: the first convolution layer's learned filters (the talk's "learned filters" slide).
"""
from __future__ import annotations

import numpy as np

from ._common import Column, Result, Timer, begin, finish, make_callable, mnist, per_class_subset

METHODS = ("from scratch", "transfer (frozen)", "transfer + fine-tune")


def _source_cnn(c1, c2, hidden, classes):
    from ..nn import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential

    return Sequential(Conv2D(1, c1, 5), ReLU(), MaxPool2D(2), Conv2D(c1, c2, 5), ReLU(), MaxPool2D(2),
                      Flatten(), Dense(c2 * 16, hidden), ReLU(), Dense(hidden, classes))


def _head(hidden, fca, classes):
    from ..nn import Dense, ReLU

    return [Dense(hidden, fca), ReLU(), Dense(fca, classes)]


KEEP = 9  # conv, relu, pool, conv, relu, pool, flatten, dense, relu


def _setup(fast):
    """The settings, the source set (digits 0-4), the target test set (5-9), the source test indices."""
    Xtr, ytr, Xte, yte = mnist()
    cfg = dict(c1=4 if fast else 8, c2=8 if fast else 16, hidden=32 if fast else 64, fca=16 if fast else 32,
               n_source=300 if fast else 4000, source_epochs=1 if fast else 3, labels_per_class=5 if fast else 10,
               n_test=200 if fast else 1000, seeds=1 if fast else 3, epochs=3 if fast else 20, batch_size=10,
               lr=0.05, momentum=0.9, source_lr=0.05, fine_tune_scale=0.1)
    src = np.flatnonzero(ytr < 5)[: cfg["n_source"]]
    tgt_test = np.flatnonzero(yte >= 5)[: cfg["n_test"]]
    src_test = np.flatnonzero(yte < 5)[: cfg["n_test"]]
    data = {"train": (Xtr, ytr), "source": (Xtr[src], ytr[src]), "target_test": (Xte[tgt_test], yte[tgt_test] - 5),
            "source_test": (Xte[src_test], yte[src_test])}
    return cfg, data


def _source(cfg, data, seed):
    """The source network trained on digits 0-4: (model, history, seconds, test accuracy on 0-4)."""
    import lamina

    from .. import optim

    Xs, ys = data["source"]
    lamina.seed(seed)
    source = _source_cnn(cfg["c1"], cfg["c2"], cfg["hidden"], 5)
    with Timer() as ts:
        src_hist = source.fit(Xs, ys, epochs=cfg["source_epochs"], batch_size=32,
                              optimizer=optim.SGD(source.parameters(), lr=cfg["source_lr"], momentum=cfg["momentum"]),
                              seed=seed, verbose=0)
    return source, src_hist, ts.seconds, source.evaluate(*data["source_test"])[1]


def _target_runs(cfg, source, Xl, yl, Xt, yt, seed):
    """The three methods on one labelled subset: {method: (model, history, seconds)}, the frozen
    transfer's test accuracy and parameter counts (before fine-tuning)."""
    import lamina

    from .. import optim
    from ..nn import Sequential
    from ..transfer import count_parameters, fine_tune, transfer

    def train(model, epochs):
        opt = optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"])
        with Timer() as t:
            h = model.fit(Xl, yl, epochs=epochs, batch_size=cfg["batch_size"], optimizer=opt, seed=seed, verbose=0)
        return h, t.seconds

    lamina.seed(1000 * seed + 1)
    scratch = Sequential(*_source_cnn(cfg["c1"], cfg["c2"], cfg["hidden"], 5).layers[:KEEP],
                         *_head(cfg["hidden"], cfg["fca"], 5))
    h, sec = train(scratch, 2 * cfg["epochs"])
    results = {"from scratch": (scratch, h, sec)}
    lamina.seed(1000 * seed + 2)
    tl = transfer(source, keep=KEEP, head=_head(cfg["hidden"], cfg["fca"], 5), freeze=True)
    h, sec = train(tl, cfg["epochs"])
    results["transfer (frozen)"] = (tl, h, sec)
    acc_frozen = tl.evaluate(Xt, yt)[1]
    params_frozen = count_parameters(tl)
    fine_tune(tl, lr_scale=cfg["fine_tune_scale"])
    h2, sec2 = train(tl, cfg["epochs"])
    merged = {k: list(h[k]) + list(h2[k]) for k in ("loss", "accuracy")}
    results["transfer + fine-tune"] = (tl, merged, sec + sec2)
    return results, acc_frozen, params_frozen


def _measure(cfg, data, source, seed):
    """Every method on every seed's labelled subset of digits 5-9: per-method results."""
    from ..transfer import count_parameters

    Xtr, ytr = data["train"]
    Xt, yt = data["target_test"]
    per = {m: {"acc": [], "s": [], "params": None, "hist": None} for m in METHODS}
    for s in range(cfg["seeds"]):
        idx = per_class_subset(ytr, cfg["labels_per_class"], classes=range(5, 10), seed=seed + s)
        results, acc_frozen, params_frozen = _target_runs(cfg, source, Xtr[idx], ytr[idx] - 5, Xt, yt, seed + s)
        for m in METHODS:
            model, hist, sec = results[m]
            p = per[m]
            p["acc"].append(acc_frozen if m == "transfer (frozen)" else model.evaluate(Xt, yt)[1])
            p["s"].append(sec)
            p["params"] = params_frozen if m == "transfer (frozen)" else count_parameters(model)
            if s == 0:
                p["hist"] = hist
    return per


def _report(cfg, fast, seed, data, src, per):
    """The Result and its plots; ``src``: _source's (model, history, seconds, accuracy)."""
    source, src_hist, src_seconds, source_acc = src
    epochs_of = {"from scratch": 2 * cfg["epochs"], "transfer (frozen)": cfg["epochs"],
                 "transfer + fine-tune": 2 * cfg["epochs"]}
    rows = [{"method": m, "acc_mean": float(np.mean(per[m]["acc"])), "acc_std": float(np.std(per[m]["acc"])),
             "trainable": per[m]["params"][0], "total": per[m]["params"][1], "epochs": epochs_of[m],
             "seconds": float(np.mean(per[m]["s"]))} for m in METHODS]
    columns = [Column("method", "method"), Column("acc_mean", "test accuracy 5-9 (mean)", "%"),
               Column("acc_std", "std", "%"), Column("trainable", "trainable params"),
               Column("total", "total params"), Column("epochs", "epochs"), Column("seconds", "train s", "{:.1f}")]
    notes = [f"source: trained on {len(data['source'][0])} images of digits 0-4 for {cfg['source_epochs']} epoch(s) "
             f"in {src_seconds:.1f} s: {100 * source_acc:.1f}% test accuracy on held-out 0-4.",
             f"target: {cfg['labels_per_class']} labelled images per digit 5-9 ({5 * cfg['labels_per_class']} in all), "
             f"SGD lr {cfg['lr']} momentum {cfg['momentum']} batch {cfg['batch_size']}; fine-tuning at "
             f"{cfg['fine_tune_scale']}x the rate below the head; {cfg['seeds']} seed(s); test on "
             f"{len(data['target_test'][0])} images of digits 5-9."]
    base = rows[0]["acc_mean"]
    notes += [f"{r['method']}: {100 * (r['acc_mean'] - base):+.1f} points vs from scratch." for r in rows[1:]]
    out = {"source_accuracy": source_acc, "source_history": src_hist,
           **{m: {"test_accuracy": per[m]["acc"], "history": per[m]["hist"]} for m in METHODS}}
    result = Result("transfer", f"transfer: digits 0-4 -> 5-9 with {cfg['labels_per_class']} labels per class",
                    columns, rows, notes, out, {"fast": fast, "seed": seed, **cfg})
    return result, _plots(source, per)


def _plots(source, per):
    def plot_filters(path):
        from .. import plot
        plot.filters(source.layers[0], path, title="first convolution layer, trained on digits 0-4")

    def plot_curves(path):
        from .. import plot
        plot.training_curves({m: per[m]["hist"] for m in METHODS}, path, title="target training (seed 0)")

    return [("transfer_filters.png", plot_filters), ("transfer_training.png", plot_curves)]


def run(fast=False, out=None, seed=0, verbose=True):
    t0 = begin("transfer", fast, seed)
    cfg, data = _setup(fast)
    src = _source(cfg, data, seed)
    per = _measure(cfg, data, src[0], seed)
    result, plots = _report(cfg, fast, seed, data, src, per)
    return finish(result, out, plots, verbose, t0)


make_callable(__name__)
