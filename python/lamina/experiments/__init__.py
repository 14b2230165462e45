"""The talk's claims, checked on the bundled MNIST sample: ``lamina experiment NAME``.

Each experiment is a module with ``run(fast=False, out=None, seed=0, verbose=True)`` returning a
``Result`` (a table of measured numbers; iterate it for the rows); the module itself is
callable, so ``lamina.experiments.vanishing(fast=True)`` runs it. With ``out`` it writes its
PNG plots and ``NAME.json`` (all the numbers) there. ``fast=True`` is a seconds-long version for
tests; the full runs take at most a few minutes on 2 cores.

- vanishing: per-layer gradient norms of a deep sigmoid MLP with N(0, 1) weights vs ReLU + He.
- init:      a 16-layer ReLU MLP from normal(0, 1) with b = 1, xavier, he, orthogonal,
             random_walk and lsuv: loss after a fixed budget, and whether it trained at all.
- pretrain:  a deep sigmoid MLP with 500 labels: random init vs greedy autoencoder vs greedy
             supervised pretraining.
- transfer:  a CNN trained on digits 0-4, transferred to 5-9 with few labels: frozen features +
             adaptation layers vs from scratch vs fine-tuning after transfer.
- distill:   a deep thin student alone vs knowledge distillation vs FitNets from a wider teacher.
- saddle:    the Hessian's spectrum of a small net at initialisation and during training.
- sgd:       full-batch gradient descent vs minibatch SGD: loss against gradient evaluations.
- saddle_free: from near the saddle at zero: GD, momentum SGD, Newton and saddle-free Newton,
             loss against gradient evaluations and the saddle index along each trajectory.
- depth:     MLPs of depth 2-20 and CNNs of growing depth from six starts (the talk's N(0,1),
             xavier, he, lsuv, random_walk, BatchNorm), sigmoid and ReLU: did it train, and the
             first/last layer gradient-norm ratio.
- backprop:  the gradient by backpropagation vs central finite differences for MLPs and CNNs of
             growing size: cost in forward passes and agreement.
- cost:      a sigmoid-output net from a saturated start trained with the quadratic cost and with
             cross-entropy: loss, accuracy and the output layer's gradient norm against epochs.
- capacity:  one-hidden-layer nets of growing width on 500 images: training error -> 0, test error
             does not; dropout and weight decay beside.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from ._common import Result  # noqa: F401

NAMES = ("vanishing", "init", "pretrain", "transfer", "distill", "saddle", "sgd", "saddle_free", "depth", "backprop",
         "cost", "capacity")
_SUMMARY = {
    "vanishing": "per-layer gradient norms: deep sigmoid N(0,1) vs ReLU + He",
    "init": "16-layer MLP from six initialisations: did it train?",
    "pretrain": "500 labels: random init vs greedy autoencoder / supervised pretraining",
    "transfer": "digits 0-4 -> 5-9 with few labels: frozen transfer, scratch, fine-tuning",
    "distill": "deep thin student: alone vs distillation vs FitNets hints",
    "saddle": "Hessian spectrum (fraction of negative eigenvalues) at init and in training",
    "sgd": "full-batch GD vs minibatch SGD: loss against gradient evaluations",
    "saddle_free": "from near the saddle at zero: GD, momentum SGD, Newton, saddle-free Newton",
    "depth": "MLPs/CNNs of growing depth from six starts and with BatchNorm: did it train?",
    "backprop": "backpropagation vs finite differences: cost in forward passes, agreement",
    "cost": "sigmoid output from saturation: quadratic cost vs cross-entropy",
    "capacity": "growing width on 500 images: training error -> 0, test error does not",
}


def __getattr__(name):
    if name in NAMES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'lamina.experiments' has no attribute {name!r}")


def get(name):
    """The experiment module called ``name``."""
    if name not in NAMES:
        raise ValueError(f"unknown experiment {name!r}; expected one of {', '.join(NAMES)}")
    return importlib.import_module(f".{name}", __name__)


def run(name, fast=False, out=None, seed=0, verbose=True):
    """Runs one experiment; returns its Result."""
    return get(name).run(fast=fast, out=out, seed=seed, verbose=verbose)


def build_parser(prog="lamina experiment"):
    p = argparse.ArgumentParser(
        prog=prog, description="Run one of the talk's experiments on the bundled MNIST sample: print a "
                               "table of measured numbers, write PNG plots and a JSON of the numbers.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="experiments:\n" + "\n".join(f"  {n:<11} {_SUMMARY[n]}" for n in NAMES))
    p.add_argument("name", metavar="NAME", choices=NAMES + ("all", "list"),
                   help="an experiment name (below), 'all', or 'list'")
    p.add_argument("--out", metavar="DIR", default="lamina-experiments",
                   help="folder for the PNG plots and NAME.json (default: ./lamina-experiments)")
    p.add_argument("--fast", action="store_true", help="a seconds-long version (smaller data and models)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: all)")
    return p


def main(argv=None, prog="lamina experiment"):
    """``lamina experiment NAME [--out DIR] [--fast] [--seed S] [--threads T]``; returns an exit code."""
    args = build_parser(prog).parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.name == "list":
        for n in NAMES:
            print(f"{n:<11} {_SUMMARY[n]}")
        return 0
    if args.threads:
        import lamina

        lamina.set_num_threads(args.threads)
    names = NAMES if args.name == "all" else (args.name,)
    for i, n in enumerate(names):
        if i:
            print()
        run(n, fast=args.fast, out=args.out, seed=args.seed, verbose=True)
    return 0


__all__ = ["NAMES", "Result", "get", "run", "main", "build_parser", *NAMES]
