"""distill: a deep thin student trained alone vs taught by a wider teacher (Hinton et al.; FitNets).

Teacher: a wide, shallow ReLU MLP 784-512-512-10 trained on the 8,000 training images. Student:
a deep, thin ReLU MLP 784-16x8-10 (eight hidden layers of 16 units, ~36x fewer parameters).
The student is trained three ways, with the same final budget (epochs, SGD rate, momentum, batches):

- alone: cross-entropy on the labels;
- distillation: alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * cross-entropy, T = 4,
  alpha = 0.9 (``lamina.distill.distill``);
- FitNets: first the hint stage (the student's lower half + a linear regressor trained with MSE to
  predict the teacher's first hidden layer), then the same distillation
  (``lamina.distill.fitnets``).

The student's rate (0.01, momentum 0.9) is one at which all three train: at 0.02 and above the
distillation loss (T^2 KL against a confident teacher, logits up to ~30) makes this deep thin
student diverge to a constant prediction. Measured over seeds: test accuracy (mean, std), the
hint MSE before and after the hint stage, parameter counts, time.

``run(..., settings={...})`` replaces entries of the configuration (``cfg``: sizes, epochs, rates)
after ``fast`` has chosen them; a name it does not have is a ValueError.
"""
from __future__ import annotations

import numpy as np

from ._common import Column, check_settings, Result, Timer, begin, dense_stack, finish, flat, make_callable, mnist

METHODS = ("student alone", "distillation (KD)", "FitNets (hints + KD)")


def _mlp(sizes):
    from ..nn import ReLU

    return dense_stack(sizes, ReLU, flatten=False)


def _setup(fast, settings):
    """The settings (``settings`` override the defaults), the (training, test) sets and the hint:
    the teacher's first hidden layer (after its ReLU) and the guided layer, the ReLU after the
    student's middle hidden layer."""
    Xtr, ytr, Xte, yte = mnist()
    cfg = dict(teacher=[784, 128, 128, 10] if fast else [784, 512, 512, 10],
               student=[784] + [8] * 4 + [10] if fast else [784] + [16] * 8 + [10],
               n_train=500 if fast else len(Xtr), n_test=300 if fast else len(Xte), seeds=1 if fast else 3,
               teacher_epochs=2 if fast else 4, epochs=2 if fast else 15, hint_epochs=1 if fast else 5,
               batch_size=64, lr=0.01, teacher_lr=0.05, hint_lr=0.01, momentum=0.9, temperature=4.0, alpha=0.9)
    cfg.update(check_settings(cfg, settings))
    sets = ((flat(Xtr[: cfg["n_train"]]), ytr[: cfg["n_train"]]), (flat(Xte[: cfg["n_test"]]), yte[: cfg["n_test"]]))
    n_hidden = len(cfg["student"]) - 2
    return cfg, sets, (1, 2 * (n_hidden // 2) - 1)


def _teacher(cfg, sets, seed):
    """The trained teacher: (model, seconds, test accuracy, its logits on the training set)."""
    import lamina

    from .. import optim

    (X, y), (Xt, yt) = sets
    lamina.seed(seed)
    teacher = _mlp(cfg["teacher"])
    with Timer() as tt:
        teacher.fit(X, y, epochs=cfg["teacher_epochs"], batch_size=cfg["batch_size"],
                    optimizer=optim.SGD(teacher.parameters(), lr=cfg["teacher_lr"], momentum=cfg["momentum"]), seed=seed,
                    verbose=0)
    return teacher, tt.seconds, teacher.evaluate(Xt, yt)[1], teacher.predict(X)


def _student(m, cfg, teacher, teacher_logits, student, X, y, hint, seed, hint_mse):
    """Trains ``student`` by method ``m``; returns its history (FitNets' hint MSE into ``hint_mse``)."""
    from .. import optim
    from ..distill import distill, fitnets

    if m == "student alone":
        return student.fit(X, y, epochs=cfg["epochs"], batch_size=cfg["batch_size"],
                           optimizer=optim.SGD(student.parameters(), lr=cfg["lr"], momentum=cfg["momentum"]),
                           seed=seed, verbose=0)
    if m == "distillation (KD)":
        return distill(teacher, student, X, y, temperature=cfg["temperature"], alpha=cfg["alpha"],
                       epochs=cfg["epochs"], batch_size=cfg["batch_size"], lr=cfg["lr"],
                       momentum=cfg["momentum"], teacher_logits=teacher_logits, seed=seed)
    r = fitnets(teacher, student, X, y, hint=hint, hint_epochs=cfg["hint_epochs"], hint_lr=cfg["hint_lr"],
                epochs=cfg["epochs"], lr=cfg["lr"], temperature=cfg["temperature"], alpha=cfg["alpha"],
                batch_size=cfg["batch_size"], momentum=cfg["momentum"], seed=seed)
    hint_mse.append(r.hint_mse)
    return r.kd_history


def _measure(cfg, sets, teacher, teacher_logits, hint, seed):
    """The student trained each way on every seed: (per-method results, hint MSEs)."""
    import lamina

    from .. import distill  # noqa: F401  (imported before the timers start)

    (X, y), (Xt, yt) = sets
    per = {m: {"acc": [], "s": [], "hist": None} for m in METHODS}
    hint_mse = []
    for s in range(cfg["seeds"]):
        for m in METHODS:
            lamina.seed(1000 * (seed + s) + 7)  # the same student initialisation for all three
            student = _mlp(cfg["student"])
            with Timer() as t:
                h = _student(m, cfg, teacher, teacher_logits, student, X, y, hint, seed + s, hint_mse)
            per[m]["acc"].append(student.evaluate(Xt, yt)[1])
            per[m]["s"].append(t.seconds)
            if s == 0:
                per[m]["hist"] = h
    return per, hint_mse


def _report(cfg, fast, seed, hint, teacher_run, per, hint_mse):
    """The Result and its plots; ``teacher_run``: _teacher's (model, seconds, accuracy, logits)."""
    from ..transfer import count_parameters

    teacher, t_seconds, teacher_acc, _ = teacher_run
    t_params = count_parameters(teacher)[1]
    s_params = count_parameters(_mlp(cfg["student"]))[1]
    rows = [{"model": "teacher " + "-".join(map(str, cfg["teacher"])), "params": t_params, "acc_mean": teacher_acc,
             "acc_std": None, "epochs": cfg["teacher_epochs"], "seconds": t_seconds}]
    for m in METHODS:
        rows.append({"model": "student: " + m, "params": s_params, "acc_mean": float(np.mean(per[m]["acc"])),
                     "acc_std": float(np.std(per[m]["acc"])),
                     "epochs": cfg["epochs"] + (cfg["hint_epochs"] if m.startswith("FitNets") else 0),
                     "seconds": float(np.mean(per[m]["s"]))})
    columns = [Column("model", "model"), Column("params", "params"), Column("acc_mean", "test accuracy (mean)", "%"),
               Column("acc_std", "std", "%"), Column("epochs", "epochs"), Column("seconds", "train s", "{:.1f}")]
    alone = rows[1]["acc_mean"]
    hm = np.array(hint_mse)
    n_hidden = len(cfg["student"]) - 2
    notes = [f"student {'-'.join(map(str, cfg['student']))} ReLU; hint = teacher layer {hint[0]} (first hidden ReLU, "
             f"{cfg['teacher'][1]} units), guided = student layer {hint[1]} (hidden layer {n_hidden // 2}); "
             f"T = {cfg['temperature']}, alpha = {cfg['alpha']}; SGD lr {cfg['lr']} momentum {cfg['momentum']} "
             f"batch {cfg['batch_size']}; {cfg['seeds']} seed(s); {cfg['n_train']} training / {cfg['n_test']} test "
             "images.",
             f"hint stage ({cfg['hint_epochs']} epoch(s), lr {cfg['hint_lr']}): hint MSE {hm[:, 0].mean():.4g} -> "
             f"{hm[:, -1].mean():.4g} (mean over seeds)."]
    notes += [f"{r['model']}: {100 * (r['acc_mean'] - alone):+.1f} points vs the student alone." for r in rows[2:]]
    data = {"teacher_accuracy": teacher_acc, "hint_mse": hint_mse,
            **{m: {"test_accuracy": per[m]["acc"], "history": per[m]["hist"]} for m in METHODS}}
    result = Result("distill", "distill: a deep thin student, alone vs taught by a wide teacher", columns, rows, notes,
                    data, {"fast": fast, "seed": seed, "hint": list(hint), **cfg})

    def plot_curves(path):
        from .. import plot
        plot.training_curves({m: per[m]["hist"] for m in METHODS}, path, metrics=("accuracy",),
                             title="student training accuracy (seed 0)")

    return result, [("distill_training.png", plot_curves)]


def run(fast=False, out=None, seed=0, verbose=True, settings=None):
    t0 = begin("distill", fast, seed)
    cfg, sets, hint = _setup(fast, settings)
    teacher_run = _teacher(cfg, sets, seed)
    per, hint_mse = _measure(cfg, sets, teacher_run[0], teacher_run[3], hint, seed)
    result, plots = _report(cfg, fast, seed, hint, teacher_run, per, hint_mse)
    return finish(result, out, plots, verbose, t0)


make_callable(__name__)
