"""depth: the talk's "unstable gradient vs architecture": does a deeper net still train?

Fully connected nets of depth 2, 5, 10 and 20 (weight layers; hidden width 64, 32 in the fast
run) and a small CNN of growing depth (3x3 convolutions with 8 channels, a 2x2 max pool after the
first and the last, then one Dense layer) on the bundled MNIST, each started from:

- ``N(0,1), b=1``: the talk's "typical" start, weights N(0, 1) and biases 1;
- ``xavier`` (Glorot & Bengio), ``he`` (He et al.), ``lsuv`` (Mishkin & Matas: orthogonal, then
  each layer rescaled to unit output variance on 500 training images) and ``random_walk``
  (Sussillo & Abbott; for the sigmoid, tanh's omega times 4, since sigmoid'(0) = tanh'(0) / 4);
- ``N(0,1), b=1 + BatchNorm``: the talk's start again, with BatchNorm before every hidden
  non-linearity (the structural fix: each layer's input renormalised whatever the weights' scale).

Every net is trained with the same budget (SGD with momentum, one learning rate, the same batches)
with sigmoid and with ReLU hidden units. Measured: ||dC/dW|| of the first weight layer over that
of the last at initialisation (the talk's unstable gradient: ~1 is healthy, orders of magnitude
below 1 vanishing, above 1 exploding), the training loss and test accuracy after training, and
whether it trained at all (test accuracy >= 50 %; chance is 10 %). A NaN/inf loss ends that run
as "diverged".
"""
from __future__ import annotations

import math

import numpy as np

from ._common import Column, Result, begin, check_settings, finish, make_callable, mnist
from ._talk import COLORS, figure, finite_or_nan, save, weight_grad_ratio

SCHEMES = ("N(0,1), b=1", "xavier", "he", "lsuv", "random_walk", "N(0,1), b=1 + BatchNorm")
TALK = "N(0,1), b=1"
BN = "N(0,1), b=1 + BatchNorm"


def _weight_init(scheme, act):
    """(init, bias_init) for a Dense or Conv2D layer under ``scheme`` with ``act`` hidden units."""
    from .. import init as _init

    if scheme in (TALK, BN):
        return "normal", "ones"
    if scheme == "lsuv":
        return "orthogonal", "zeros"  # rescaled on data by init.lsuv after the net is built
    if scheme == "random_walk":
        if act == "relu":
            return "random_walk", "zeros"
        return (lambda shape, rng: 4.0 * _init.random_walk(shape, rng, nonlinearity="tanh")), "zeros"
    return scheme, "zeros"


def _activation(act):
    from ..nn import ReLU, Sigmoid

    return {"sigmoid": Sigmoid, "relu": ReLU}[act]()


def mlp(depth, width, act, scheme):
    """784 -> (depth - 1) hidden layers of ``width`` -> 10: ``depth`` Dense layers."""
    from ..nn import BatchNorm1D, Dense, Flatten, Sequential

    w_init, b_init = _weight_init(scheme, act)
    sizes = [784] + [width] * (depth - 1) + [10]
    layers = [Flatten()]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Dense(a, b, init=w_init, bias_init=b_init))
        if i < depth - 1:
            if scheme == BN:
                layers.append(BatchNorm1D(b))
            layers.append(_activation(act))
    return Sequential(*layers)


def cnn(depth, channels, act, scheme):
    """(N, 1, 28, 28) -> ``depth - 1`` 3x3 convolutions (padding 1, ``channels`` each; a 2x2 max
    pool after the first and after the last: 28 -> 14 -> 7) -> Dense(channels * 49, 10)."""
    from ..nn import BatchNorm2D, Conv2D, Dense, Flatten, MaxPool2D, Sequential

    w_init, b_init = _weight_init(scheme, act)
    layers = []
    n_conv = depth - 1
    for i in range(n_conv):
        layers.append(Conv2D(1 if i == 0 else channels, channels, 3, padding=1, init=w_init, bias_init=b_init))
        if scheme == BN:
            layers.append(BatchNorm2D(channels))
        layers.append(_activation(act))
        if i == 0 or i == n_conv - 1:
            layers.append(MaxPool2D(2))
    layers += [Flatten(), Dense(channels * 49, 10, init=w_init, bias_init=b_init)]
    return Sequential(*layers)


def _train_one(model, scheme, act, cfg, X, y, Xt, yt, Xp, yp, X_lsuv, seed):
    from .. import init as _init
    from .. import optim
    from ..nn import NonFiniteLossError

    if scheme == "lsuv":
        with np.errstate(all="ignore"):
            _init.lsuv(model, X_lsuv, rng=seed)
    ratio, norms = weight_grad_ratio(model, Xp, yp)
    opt = optim.SGD(model.parameters(), lr=cfg["lr"][act], momentum=cfg["momentum"])
    status, hist, loss1, acc = "ok", None, float("nan"), None
    try:
        with np.errstate(all="ignore"):
            hist = model.fit(X, y, epochs=cfg["epochs"], batch_size=cfg["batch_size"], optimizer=opt, seed=seed,
                             verbose=0)
            loss1, acc = hist["loss"][-1], model.evaluate(Xt, yt)[1]
    except NonFiniteLossError as e:
        status = f"diverged (epoch {e.epoch}, batch {e.batch})"
    trained = status == "ok" and math.isfinite(loss1) and acc is not None and acc >= 0.5
    return {"grad_ratio": ratio, "loss": loss1, "test_acc": acc, "trained": trained, "status": status}, \
        {"grad_norms_init": norms, "train_loss": None if hist is None else hist["loss"]}


def _plot(rows, cfg, path):
    """Test accuracy (top) and the gradient ratio at init (bottom) against depth: one column per
    (activation, net), one line per scheme."""
    acts = cfg["activations"]
    fig, axes = figure(2, 2 * len(acts), size=(5.0 * len(acts) * 2, 7.5))
    for a, act in enumerate(acts):
        for c, arch in enumerate(("MLP", "CNN")):
            top, bottom = axes[0][2 * a + c], axes[1][2 * a + c]
            schemes = cfg["schemes"] if arch == "MLP" else cfg["cnn_schemes"]
            for s, scheme in enumerate(schemes):
                sel = sorted((r for r in rows if r["arch"] == arch and r["activation"] == act
                              and r["scheme"] == scheme), key=lambda r: r["depth"])
                if not sel:
                    continue
                d = [r["depth"] for r in sel]
                color = COLORS[SCHEMES.index(scheme) % len(COLORS)]
                top.plot(d, finite_or_nan(r["test_acc"] for r in sel), "o-", color=color, label=scheme)
                bottom.semilogy(d, finite_or_nan(r["grad_ratio"] for r in sel), "o-", color=color, label=scheme)
            top.axhline(0.1, color="gray", lw=0.8, ls=":")
            bottom.axhline(1.0, color="gray", lw=0.8, ls=":")
            top.set(title=f"{arch}, {act}", ylabel="test accuracy", ylim=(0, 1))
            bottom.set(xlabel="depth (weight layers)", ylabel="||dC/dW1|| / ||dC/dWL|| at init")
            for ax in (top, bottom):
                ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    save(fig, path)


def run(fast=False, out=None, seed=0, verbose=True, settings=None):
    import lamina

    t0 = begin("depth", fast, seed)
    Xtr, ytr, Xte, yte = mnist()
    cfg = dict(depths=[2, 5, 10, 20], cnn_depths=[3, 6] if fast else [3, 6, 10], width=32 if fast else 64,
               channels=8, activations=["sigmoid"] if fast else ["sigmoid", "relu"], schemes=list(SCHEMES),
               cnn_schemes=[TALK, "he", BN] if fast else list(SCHEMES), n_train=2000 if fast else 8000,
               n_train_cnn=1000 if fast else 2000, n_test=500 if fast else len(Xte), epochs=3 if fast else 5,
               batch_size=32, lr={"sigmoid": 0.05, "relu": 0.01}, momentum=0.9, n_probe=256 if fast else 1000,
               n_lsuv=256 if fast else 500)
    cfg.update(check_settings(cfg, settings))
    Xt, yt = Xte[: cfg["n_test"]], yte[: cfg["n_test"]]
    Xp, yp = Xtr[: cfg["n_probe"]], ytr[: cfg["n_probe"]]
    X_lsuv = Xtr[: cfg["n_lsuv"]]
    rows, data = [], {}
    archs = [("MLP", d) for d in cfg["depths"]] + [("CNN", d) for d in cfg["cnn_depths"]]
    for k, (arch, depth) in enumerate(archs):
        n = cfg["n_train"] if arch == "MLP" else cfg["n_train_cnn"]
        X, y = Xtr[:n], ytr[:n]
        for act in cfg["activations"]:
            for j, scheme in enumerate(cfg["schemes"] if arch == "MLP" else cfg["cnn_schemes"]):
                lamina.seed(seed * 100003 + k * 1009 + j)
                model = mlp(depth, cfg["width"], act, scheme) if arch == "MLP" else \
                    cnn(depth, cfg["channels"], act, scheme)
                row, series = _train_one(model, scheme, act, cfg, X, y, Xt, yt, Xp, yp, X_lsuv, seed)
                rows.append({"arch": arch, "depth": depth, "activation": act, "scheme": scheme, **row})
                data[f"{arch} {depth} {act} {scheme}"] = series
    columns = [Column("arch", "net"), Column("depth", "depth"), Column("activation", "hidden units"),
               Column("scheme", "initialisation"), Column("grad_ratio", "||dC/dW1|| / ||dC/dWL|| at init", "{:.3g}"),
               Column("loss", f"train loss after {cfg['epochs']} ep"), Column("test_acc", "test accuracy", "%"),
               Column("trained", "trained?"), Column("status", "run")]
    notes = [f"MLPs of hidden width {cfg['width']} on {cfg['n_train']} images, CNNs with {cfg['channels']} channels "
             f"on {cfg['n_train_cnn']}; SGD (lr {cfg['lr']['sigmoid']} sigmoid, {cfg['lr']['relu']} ReLU) "
             f"momentum {cfg['momentum']}, batch {cfg['batch_size']}, "
             f"{cfg['epochs']} epoch(s); test on {cfg['n_test']} images; depth = weight layers; gradient norms of "
             f"the mean cross-entropy over {cfg['n_probe']} training images (batch statistics)."]
    for arch in ("MLP", "CNN"):
        deepest = max((r["depth"] for r in rows if r["arch"] == arch), default=None)
        for act in cfg["activations"]:
            sel = [r for r in rows if r["arch"] == arch and r["depth"] == deepest and r["activation"] == act]
            if sel:
                ok = [r["scheme"] for r in sel if r["trained"]]
                notes.append(f"{arch} of depth {deepest}, {act}: trained with {', '.join(ok) or 'none'}; did not with "
                             f"{', '.join(r['scheme'] for r in sel if not r['trained']) or 'none'}.")
    result = Result("depth", "depth: does a deeper net still train? initialisation and BatchNorm against depth",
                    columns, rows, notes, data, {"fast": fast, "seed": seed, **cfg})

    return finish(result, out, [("depth.png", lambda path: _plot(rows, cfg, path))], verbose, t0)


make_callable(__name__)
