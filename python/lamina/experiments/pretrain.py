"""pretrain: greedy layer-wise pretraining of a deep sigmoid MLP with few labels.

A 784-256-128-64-32-10 sigmoid MLP trained on 500 labelled images (50 per class) in three ways,
the same supervised budget each (SGD, momentum 0.9, same rate, same batches):

- random: Xavier initialisation, then supervised training;
- greedy autoencoder: each hidden layer first pretrained as a denoising autoencoder (masking
  noise 0.2) on all 8,000 training images *without* their labels, then the same supervised
  training (the unlabelled images are the point of unsupervised pretraining);
- greedy supervised: Bengio et al.'s supervised layer-by-layer stages on the 500 labels, then the
  same supervised training of the whole stack.

Measured over several seeds: test accuracy on the 2,000 held-out images (mean and standard
deviation), final training loss, and the time of each phase.

``run(..., settings={...})`` replaces entries of the configuration (``cfg``: sizes, epochs, rates)
after ``fast`` has chosen them; a name it does not have is a ValueError.
"""
from __future__ import annotations

import numpy as np

from ._common import Column, check_settings, Result, Timer, begin, finish, flat, make_callable, mnist, per_class_subset

METHODS = ("random init", "greedy autoencoder", "greedy supervised")


def _hidden(sizes):
    from ..nn import Dense, Sigmoid

    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [Dense(a, b, init="xavier"), Sigmoid()]
    return layers


def _setup(fast, settings):
    """The settings (``settings`` override the defaults) and the unlabelled and test sets."""
    Xtr, ytr, Xte, yte = mnist()
    cfg = dict(sizes=[784, 64, 32, 16] if fast else [784, 256, 128, 64, 32], labels_per_class=10 if fast else 50,
               n_unlabelled=500 if fast else len(Xtr), n_test=300 if fast else len(Xte),
               seeds=1 if fast else 3, ae_epochs=1 if fast else 3, ae_noise=0.2, ae_lr=1e-3,
               sup_pre_epochs=2 if fast else 10, epochs=5 if fast else 40, batch_size=32, lr=0.1, momentum=0.9)
    cfg.update(check_settings(cfg, settings))
    data = {"train": (Xtr, ytr), "unlabelled": flat(Xtr[: cfg["n_unlabelled"]]),
            "test": (flat(Xte[: cfg["n_test"]]), yte[: cfg["n_test"]])}
    return cfg, data


def _pretrained(method, hidden, cfg, Xu, Xl, yl, seed):
    """(the pretraining's history or None, the output layers) for ``method``."""
    from ..nn import Dense
    from ..pretrain import greedy_autoencoder, greedy_supervised

    if method == "greedy autoencoder":
        pre_hist = greedy_autoencoder(hidden, Xu, epochs=cfg["ae_epochs"], lr=cfg["ae_lr"],
                                      batch_size=cfg["batch_size"], noise=cfg["ae_noise"], seed=seed).history
        return pre_hist, [Dense(cfg["sizes"][-1], 10, init="xavier")]
    if method == "greedy supervised":
        res = greedy_supervised(hidden, Xl, yl, 10, epochs=cfg["sup_pre_epochs"], lr=cfg["lr"],
                                batch_size=cfg["batch_size"], momentum=cfg["momentum"], seed=seed)
        return res.history, res.head
    return None, [Dense(cfg["sizes"][-1], 10, init="xavier")]


def _one_run(method, cfg, data, Xl, yl, seed, p):
    """Pretraining (timed), then supervised training (timed) into ``p``; returns the first
    hidden layer (for its features)."""
    from .. import optim
    from .. import pretrain  # noqa: F401  (imported before the timer starts)
    from ..nn import Sequential

    hidden = _hidden(cfg["sizes"])
    with Timer() as tp:
        pre_hist, head = _pretrained(method, hidden, cfg, data["unlabelled"], Xl, yl, seed)
    model = Sequential(*hidden, *head)
    opt = optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"])
    with Timer() as tt:
        hist = model.fit(Xl, yl, epochs=cfg["epochs"], batch_size=cfg["batch_size"], optimizer=opt, seed=seed,
                         verbose=0)
    p["acc"].append(model.evaluate(*data["test"])[1])
    p["loss"].append(hist["loss"][-1])
    p["pre_s"].append(tp.seconds)
    p["train_s"].append(tt.seconds)
    return hist, pre_hist, hidden[0]


def _measure(cfg, data, seed):
    """Every method on every seed's labelled subset: (per-method results, the autoencoders'
    first-layer features)."""
    import lamina

    Xtr, ytr = data["train"]
    ae_features = None
    per = {m: {"acc": [], "loss": [], "pre_s": [], "train_s": [], "hist": None, "pre": None} for m in METHODS}
    for s in range(cfg["seeds"]):
        idx = per_class_subset(ytr, cfg["labels_per_class"], seed=seed + s)
        Xl, yl = flat(Xtr[idx]), ytr[idx]
        for k, method in enumerate(METHODS):
            lamina.seed(1000 * (seed + s) + k)
            hist, pre_hist, first = _one_run(method, cfg, data, Xl, yl, seed + s, per[method])
            if s == 0 and method == "greedy autoencoder":  # the first layer's features as the autoencoders left them
                ae_features = first.weight.numpy()[:64]
            if s == 0:
                per[method]["hist"], per[method]["pre"] = hist, pre_hist
    return per, ae_features


def _rows(per):
    rows = []
    for m in METHODS:
        p = per[m]
        rows.append({"method": m, "acc_mean": float(np.mean(p["acc"])), "acc_std": float(np.std(p["acc"])),
                     "acc_min": float(np.min(p["acc"])), "acc_max": float(np.max(p["acc"])),
                     "train_loss": float(np.mean(p["loss"])), "pre_s": float(np.mean(p["pre_s"])),
                     "train_s": float(np.mean(p["train_s"]))})
    return rows


def _report(cfg, fast, seed, per, ae_features):
    """The Result and its plots."""
    rows = _rows(per)
    columns = [Column("method", "method"), Column("acc_mean", "test accuracy (mean)", "%"),
               Column("acc_std", "std", "%"), Column("acc_min", "min", "%"), Column("acc_max", "max", "%"),
               Column("train_loss", "final train loss"), Column("pre_s", "pretraining s", "{:.1f}"),
               Column("train_s", "supervised s", "{:.1f}")]
    base = rows[0]["acc_mean"]
    sizes = "-".join(map(str, cfg["sizes"] + [10]))
    notes = [f"{sizes} sigmoid MLP, {10 * cfg['labels_per_class']} labelled training images, "
             f"{cfg['epochs']} supervised epochs (SGD lr {cfg['lr']}, momentum {cfg['momentum']}, batch "
             f"{cfg['batch_size']}); {cfg['seeds']} seed(s); test on {cfg['n_test']} images.",
             f"autoencoder pretraining: {cfg['ae_epochs']} epoch(s) per layer (Adam lr {cfg['ae_lr']}, masking noise "
             f"{cfg['ae_noise']}) on {cfg['n_unlabelled']} unlabelled images; supervised pretraining: "
             f"{cfg['sup_pre_epochs']} epochs per stage on the labelled images."]
    notes += [f"{r['method']}: {100 * (r['acc_mean'] - base):+.1f} points of test accuracy vs random init."
              for r in rows[1:]]
    ae = per["greedy autoencoder"]["pre"]
    if ae:
        notes.append("autoencoder reconstruction loss per layer (before -> after): " + ", ".join(
            f"layer {h['block'] + 1} {h['loss'][0]:.3g} -> {h['loss'][-1]:.3g}" for h in ae))
    data = {m: {"test_accuracy": per[m]["acc"], "train_loss": per[m]["loss"],
                "history": per[m]["hist"], "pretraining": per[m]["pre"]} for m in METHODS}
    result = Result("pretrain", f"pretrain: {sizes} sigmoid MLP with {10 * cfg['labels_per_class']} labels",
                    columns, rows, notes, data, {"fast": fast, "seed": seed, **cfg})
    return result, _plots(per, ae_features)


def _plots(per, ae_features):
    def plot_curves(path):
        from .. import plot
        plot.training_curves({m: per[m]["hist"] for m in METHODS}, path, title="supervised training (seed 0)")

    def plot_filters(path):
        from .. import plot
        plot.filters(ae_features, path, image_shape=(28, 28),
                     title="first-layer features learned by the denoising autoencoder")

    return [("pretrain_training.png", plot_curves), ("pretrain_ae_features.png", plot_filters)]


def run(fast=False, out=None, seed=0, verbose=True, settings=None):
    t0 = begin("pretrain", fast, seed)
    cfg, data = _setup(fast, settings)
    per, ae_features = _measure(cfg, data, seed)
    result, plots = _report(cfg, fast, seed, per, ae_features)
    return finish(result, out, plots, verbose, t0)


make_callable(__name__)
