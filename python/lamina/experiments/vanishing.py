"""vanishing: the talk's "the first layers learn slower than the later ones", measured.

A deep sigmoid MLP 784-30-30-30-30-10 with N(0, 1) weights and biases (the talk's "typical"
start) and the same network with ReLU and He initialisation (zero biases). For each: the
per-layer gradient norms ||dC/db|| (the norm of the layer's mean error delta: the talk's "speed
of learning") and ||dC/dW|| at initialisation on 1,000 training images, the same after training
with minibatch SGD, the ratio hidden-1 / hidden-4, and test accuracy. Plots: the gradient norms
of every layer over the epochs for both networks.
"""
from __future__ import annotations

from ._common import Column, Result, begin, dense_stack, finish, make_callable, mnist


def _mlp(sizes, activation, init, bias_std):
    from .. import init as _init
    from ..nn import ReLU, Sigmoid

    act = {"sigmoid": Sigmoid, "relu": ReLU}[activation]
    noisy_bias = (lambda d: d.bias.assign(_init.normal((d.bias.shape[0],), std=bias_std))) if bias_std else None
    return dense_stack(sizes, act, init=init, each=noisy_bias)


_NETS = {"sigmoid, N(0,1)": ("sigmoid", "normal", 1.0), "ReLU, He": ("relu", "he", 0.0)}
_TAGS = (("sig", "sigmoid, N(0,1)"), ("relu", "ReLU, He"))


def _setup(fast):
    """The settings and the (training, probe, test) sets."""
    Xtr, ytr, Xte, yte = mnist()
    cfg = dict(sizes=[784, 30, 30, 30, 30, 10], n_train=500 if fast else 8000, n_probe=200 if fast else 1000,
               n_test=500 if fast else len(Xte), epochs=2 if fast else 10, batch_size=10, lr=0.1)
    sets = ((Xtr[: cfg["n_train"]], ytr[: cfg["n_train"]]), (Xtr[: cfg["n_probe"]], ytr[: cfg["n_probe"]]),
            (Xte[: cfg["n_test"]], yte[: cfg["n_test"]]))
    return cfg, sets


def _measure(cfg, sets, seed):
    """Both networks trained, the gradient norms recorded: (recorders, test accuracies, histories)."""
    from .. import optim
    from ..diagnostics import GradientNormRecorder

    (X, y), (Xp, yp), (Xt, yt) = sets
    recs, accs, hists = {}, {}, {}
    for name, (act, init, bstd) in _NETS.items():
        model = _mlp(cfg["sizes"], act, init, bstd)
        rec = GradientNormRecorder(Xp, yp)
        opt = optim.SGD(model.parameters(), lr=cfg["lr"])
        hists[name] = model.fit(X, y, epochs=cfg["epochs"], batch_size=cfg["batch_size"], optimizer=opt,
                                callbacks=[rec], seed=seed, verbose=0)
        recs[name] = rec
        accs[name] = model.evaluate(Xt, yt)[1]
    return recs, accs, hists


def _rows(cfg, recs, accs):
    """The table's rows, the layer labels and the hidden 1 / hidden 4 ratios (at init, after)."""
    n_layers = len(cfg["sizes"]) - 1
    labels = [f"hidden {i + 1}" for i in range(n_layers - 1)] + ["output"]
    rows = []
    for li in range(n_layers):
        row = {"layer": labels[li]}
        for tag, name in _TAGS:
            first, last = recs[name].records[0]["layers"][li], recs[name].records[-1]["layers"][li]
            row[f"{tag}_b0"], row[f"{tag}_w0"], row[f"{tag}_b1"] = first["bias"], first["weight"], last["bias"]
        rows.append(row)
    ratios = {}
    for tag, name in _TAGS:
        r0 = recs[name].records[0]["layers"]
        r1 = recs[name].records[-1]["layers"]
        ratios[tag] = (r0[0]["bias"] / r0[n_layers - 2]["bias"], r1[0]["bias"] / r1[n_layers - 2]["bias"])
    rows.append({"layer": "hidden 1 / hidden 4", "sig_b0": ratios["sig"][0], "sig_b1": ratios["sig"][1],
                 "relu_b0": ratios["relu"][0], "relu_b1": ratios["relu"][1]})
    rows.append({"layer": "test accuracy", "sig_b1": f"{100 * accs['sigmoid, N(0,1)']:.1f}%",
                 "relu_b1": f"{100 * accs['ReLU, He']:.1f}%"})
    return rows, labels, ratios


def _report(cfg, fast, seed, recs, accs, hists):
    """The Result and its plots."""
    rows, labels, ratios = _rows(cfg, recs, accs)
    columns = [Column("layer", "layer"),
               Column("sig_b0", "sigmoid ||dC/db|| init"), Column("sig_w0", "sigmoid ||dC/dW|| init"),
               Column("sig_b1", f"sigmoid ||dC/db|| after {cfg['epochs']} ep"),
               Column("relu_b0", "ReLU+He ||dC/db|| init"), Column("relu_w0", "ReLU+He ||dC/dW|| init"),
               Column("relu_b1", f"ReLU+He ||dC/db|| after {cfg['epochs']} ep")]
    notes = [
        f"sigmoid N(0,1): hidden layer 1 gets {ratios['sig'][0]:.3g}x the gradient norm ||dC/db|| of hidden "
        f"layer 4 at initialisation ({ratios['sig'][1]:.3g}x after training); ReLU + He: "
        f"{ratios['relu'][0]:.3g}x ({ratios['relu'][1]:.3g}x).",
        f"test accuracy after {cfg['epochs']} epochs of SGD (lr {cfg['lr']}, batch {cfg['batch_size']}, "
        f"{cfg['n_train']} images): sigmoid {100 * accs['sigmoid, N(0,1)']:.1f}%, "
        f"ReLU + He {100 * accs['ReLU, He']:.1f}%.",
        f"gradient norms are of the mean cross-entropy over {cfg['n_probe']} training images.",
    ]
    data = {name: {"epochs": rec.epochs, "bias_norms": rec.series("bias"), "weight_norms": rec.series("weight"),
                   "train_loss": hists[name]["loss"], "test_accuracy": accs[name]} for name, rec in recs.items()}
    result = Result("vanishing", "vanishing: per-layer gradient norms, 784-30-30-30-30-10", columns, rows, notes,
                    data, {"fast": fast, "seed": seed, **cfg})
    return result, _plots(recs, hists, labels)


def _plots(recs, hists, labels):
    def plot_norms(path):
        from .. import plot
        plot.gradient_norms(recs, path, key="bias", labels=labels, title="||dC/db|| per layer during training")

    def plot_weights(path):
        from .. import plot
        plot.gradient_norms(recs, path, key="weight", labels=labels, title="||dC/dW|| per layer during training")

    def plot_curves(path):
        from .. import plot
        plot.training_curves(hists, path, title="training loss / accuracy")

    return [("vanishing_bias_norms.png", plot_norms), ("vanishing_weight_norms.png", plot_weights),
            ("vanishing_training.png", plot_curves)]


def run(fast=False, out=None, seed=0, verbose=True):
    t0 = begin("vanishing", fast, seed)
    cfg, sets = _setup(fast)
    recs, accs, hists = _measure(cfg, sets, seed)
    result, plots = _report(cfg, fast, seed, recs, accs, hists)
    return finish(result, out, plots, verbose, t0)


make_callable(__name__)
