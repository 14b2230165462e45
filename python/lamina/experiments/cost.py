"""cost: the talk's "least squares is slow with a sigmoid output"; cross-entropy is not.

The same network, 784-30-10 with sigmoid hidden and sigmoid output units (xavier weights), is
trained from the same start with the same learning rate by SGD on two costs:

- the quadratic cost C = 1/(2n) sum_x ||y(x) - a(x)||^2 (``losses.MSE``), whose output error
  delta = (a - y) sigma'(z) vanishes where the output unit saturates;
- the cross-entropy C = -1/n sum_x sum_j [y_j ln a_j + (1 - y_j) ln(1 - a_j)], whose delta =
  a - y does not (sigma'(z) cancels). ``losses.BinaryCrossEntropy`` averages over the n x 10
  outputs, so it is trained with the learning rate times 10: the same steps as the talk's sum.

Starts: saturated (every output bias 5: each output unit starts at sigma(5) = 0.993, wrong and
flat for the 9 classes an image is not) and, as the control, unsaturated (output biases 0).
Measured against epochs: each cost's value, the training and test accuracy (argmax of the
outputs), and ||dC/dW|| of the output layer on 500 training images.
"""
from __future__ import annotations

import numpy as np

from ._common import Column, Result, begin, check_settings, finish, make_callable, mnist
from ._talk import COLORS, figure, save

COSTS = ("quadratic", "cross-entropy")
_LOSS = {"quadratic": "mse", "cross-entropy": "binary_cross_entropy"}


def _net(hidden, output_bias):
    from ..nn import Dense, Flatten, Sequential, Sigmoid

    out_bias = lambda shape, rng: np.full(shape, output_bias, np.float32)  # noqa: E731
    return Sequential(Flatten(), Dense(784, hidden, init="xavier"), Sigmoid(),
                      Dense(hidden, 10, init="xavier", bias_init=out_bias), Sigmoid())


def _measure(model, cost, X, Y, y, Xt, yt, Xp, Yp):
    """(the talk's cost on X, train accuracy, test accuracy, ||dC/dW|| of the output layer)."""
    from ..diagnostics import gradient_norms

    scale = Y.shape[1] if cost == "cross-entropy" else 1.0  # BCE's mean over outputs -> the sum
    loss = model.evaluate(X, Y, loss=_LOSS[cost])[0] * scale
    acc = float(np.mean(model.predict(X).argmax(axis=1) == y))
    test_acc = float(np.mean(model.predict(Xt).argmax(axis=1) == yt))
    g_out = gradient_norms(model, Xp, Yp, loss=_LOSS[cost])[-1]["weight"] * scale
    return loss, acc, test_acc, g_out


def _train(cost, start, cfg, X, Y, y, Xt, yt, Xp, Yp, seed):
    import lamina

    from .. import optim

    lamina.seed(seed)  # the same start for both costs
    model = _net(cfg["hidden"], cfg["output_bias"] if start == "saturated" else 0.0)
    lr = cfg["lr"] * (Y.shape[1] if cost == "cross-entropy" else 1.0)
    opt = optim.SGD(model.parameters(), lr=lr)
    curve = {"epoch": [], "cost": [], "train_acc": [], "test_acc": [], "grad_out": []}
    for epoch in range(cfg["epochs"] + 1):
        if epoch:
            model.fit(X, Y, epochs=1, batch_size=cfg["batch_size"], optimizer=opt, loss=_LOSS[cost],
                      seed=seed * 1000 + epoch, verbose=0)
        loss, acc, test_acc, g = _measure(model, cost, X, Y, y, Xt, yt, Xp, Yp)
        for k, v in zip(("epoch", "cost", "train_acc", "test_acc", "grad_out"), (epoch, loss, acc, test_acc, g)):
            curve[k].append(v)
    return curve


def run(fast=False, out=None, seed=0, verbose=True, settings=None):
    t0 = begin("cost", fast, seed)
    Xtr, ytr, Xte, yte = mnist()
    cfg = dict(hidden=30, output_bias=5.0, starts=["saturated", "unsaturated"], n_train=1000 if fast else 2000,
               n_test=500 if fast else len(Xte), n_probe=500, epochs=4 if fast else 15, batch_size=10, lr=0.5)
    cfg.update(check_settings(cfg, settings))
    n = cfg["n_train"]
    X, y = Xtr[:n], ytr[:n]
    Y = np.eye(10, dtype=np.float32)[y]
    Xt, yt = Xte[: cfg["n_test"]], yte[: cfg["n_test"]]
    Xp, Yp = X[: cfg["n_probe"]], Y[: cfg["n_probe"]]
    curves, rows = {}, []
    for start in cfg["starts"]:
        for cost in COSTS:
            c = curves[f"{start}, {cost}"] = _train(cost, start, cfg, X, Y, y, Xt, yt, Xp, Yp, seed)
            half = next((e for e, a in zip(c["epoch"], c["train_acc"]) if a >= 0.5), None)
            rows.append({"start": start, "cost": cost, "grad0": c["grad_out"][0], "cost0": c["cost"][0],
                         "acc1": c["train_acc"][1], "to_half": half, "cost_end": c["cost"][-1],
                         "acc_end": c["train_acc"][-1], "test_acc": c["test_acc"][-1]})
    E = cfg["epochs"]
    columns = [Column("start", "start"), Column("cost", "cost"),
               Column("grad0", "output ||dC/dW|| at start", "{:.3g}"), Column("cost0", "cost at start"),
               Column("acc1", "train acc after 1 ep", "%"), Column("to_half", "epochs to 50% train acc"),
               Column("cost_end", f"cost after {E} ep"), Column("acc_end", f"train acc after {E} ep", "%"),
               Column("test_acc", "test accuracy", "%")]
    r = {(row["start"], row["cost"]): row for row in rows}
    notes = [f"784-{cfg['hidden']}-10, sigmoid hidden and output units, SGD lr {cfg['lr']} (the talk's costs: "
             f"averaged over the examples, summed over the outputs), batch {cfg['batch_size']}, {n} training "
             f"images, {cfg['n_test']} test images; saturated start: output biases {cfg['output_bias']:g}."]
    if ("saturated", "quadratic") in r and ("saturated", "cross-entropy") in r:
        q, ce = r[("saturated", "quadratic")], r[("saturated", "cross-entropy")]
        notes.append(f"from saturation the output layer's gradient is {ce['grad0'] / q['grad0']:.3g}x larger under "
                     f"cross-entropy; after one epoch {100 * ce['acc1']:.1f}% vs {100 * q['acc1']:.1f}% training "
                     f"accuracy (cross-entropy vs quadratic).")
    data = {"curves": curves}
    result = Result("cost", "cost: quadratic vs cross-entropy with a sigmoid output, from a saturated start",
                    columns, rows, notes, data, {"fast": fast, "seed": seed, **cfg})

    def plot(path):
        fig, axes = figure(1, 3, size=(15.0, 4.2))
        for i, (name, c) in enumerate(curves.items()):
            style = "-" if name.startswith("saturated") else "--"
            color = COLORS[COSTS.index(name.split(", ")[1])]
            axes[0][0].semilogy(c["epoch"], c["cost"], style, marker="o", ms=3, color=color, label=name)
            axes[0][1].plot(c["epoch"], c["train_acc"], style, marker="o", ms=3, color=color, label=name)
            axes[0][2].semilogy(c["epoch"], c["grad_out"], style, marker="o", ms=3, color=color, label=name)
        axes[0][0].set(xlabel="epoch", ylabel="cost (its own)", title="cost")
        axes[0][1].set(xlabel="epoch", ylabel="training accuracy", title="training accuracy", ylim=(0, 1))
        axes[0][2].set(xlabel="epoch", ylabel="output layer ||dC/dW||", title="output layer gradient norm")
        for ax in axes[0]:
            ax.grid(alpha=0.3)
        axes[0][1].legend(fontsize=8)
        save(fig, path)

    return finish(result, out, [("cost.png", plot)], verbose, t0)


make_callable(__name__)
