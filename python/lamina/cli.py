"""The ``lamina`` command (also ``python -m lamina``).

    lamina train [--model lenet5|mlp] [--epochs N] [--batch-size N] [--lr X] [--momentum M]
                 [--schedule cosine|none] [--data DIR] [--out model.safetensors] [--seed S] [--threads T]
                 [--checkpoint PATH] [--resume PATH] [--distributed]
                 [--early-stopping PATIENCE] [--checkpoint-best PATH] [--validation-split F]
    lamina evaluate model.safetensors [--data DIR]
    lamina export model.safetensors model.onnx --input-shape 1,1,28,28 [--opset N]
    lamina info
    lamina bench [...]        (the kernel table vs NumPy: lamina.bench)

By default ``train`` uses the MNIST sample bundled with lamina: the first 8,000 images to train,
the last 2,000 to test. With --data DIR it reads the IDX files of MNIST / Fashion-MNIST / KMNIST
in DIR (the train split to train, the test split to test).

``--checkpoint PATH`` saves a checkpoint (model, optimiser, schedule, epoch, seed, batch size)
after every epoch; ``--resume PATH`` continues one (its seed and global batch size unless given).
``mpiexec -n N lamina train --distributed`` trains data-parallel on N ranks (``lamina[mpi]``):
``--batch-size`` is the global batch, rank 0 prints and writes the files, a checkpoint resumes
on any number of ranks. Without --threads each rank takes its share of the machine's cores.

``--early-stopping PATIENCE`` stops when the validation loss has not improved for PATIENCE
epochs and keeps the best epoch's weights (``lamina.callbacks.EarlyStopping``);
``--checkpoint-best PATH`` keeps the checkpoint of the best epoch so far in PATH
(``ModelCheckpoint(save_best_only=True)``, resumable with --resume). Both monitor the loss on
the last ``--validation-split`` of the training images (10% unless given), held out of training.

``export`` writes a saved model as ONNX (``lamina.onnx.export``, needs ``lamina[onnx]``);
``--input-shape`` is the input's shape with the (dynamic) batch axis first.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

_BUNDLED_TRAIN = 8000


def _load_data(data_dir):
    """(X_train, y_train, X_test, y_test)."""
    from .datasets import load_mnist

    if data_dir is None:
        X, y = load_mnist()
        return X[:_BUNDLED_TRAIN], y[:_BUNDLED_TRAIN], X[_BUNDLED_TRAIN:], y[_BUNDLED_TRAIN:]
    Xtr, ytr = load_mnist(data_dir, split="train")
    Xte, yte = load_mnist(data_dir, split="test")
    return Xtr, ytr, Xte, yte


def _load_test(data_dir):
    from .datasets import load_mnist

    if data_dir is None:
        X, y = load_mnist()
        return X[_BUNDLED_TRAIN:], y[_BUNDLED_TRAIN:]
    return load_mnist(data_dir, split="test")


class _SaveCheckpoint:
    """A fit callback: a checkpoint after every epoch (rank 0 only when distributed)."""

    rank_zero_only = True

    def __init__(self, path, optimizer, scheduler, extra):
        self.path, self.optimizer, self.scheduler, self.extra = path, optimizer, scheduler, extra
        self.model = None

    def set_model(self, model):
        self.model = model

    def on_epoch_end(self, epoch, logs):
        from . import io

        io.save(self.model, self.path, optimizer=self.optimizer, scheduler=self.scheduler, epoch=epoch + 1,
                extra=self.extra)


def _model_to_train(args, ckpt, run):
    """(model, optimizer, scheduler, initial epoch, model name): the checkpoint's, or new ones."""
    from . import models, optim

    if ckpt is not None:
        return ckpt.model, ckpt.optimizer, ckpt.scheduler, ckpt.epoch or 0, run.get("model", "model")
    model = models.MODELS[args.model]()
    opt = optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    scheduler = optim.CosineLR(opt, T_max=args.epochs) if args.schedule == "cosine" and args.epochs > 0 else None
    return model, opt, scheduler, 0, args.model


def _train_callbacks(args, opt, scheduler, extra):
    """(fit's callbacks, the validation split): the schedule, --checkpoint, --checkpoint-best and
    --early-stopping (which hold out 10% of the training images unless --validation-split says)."""
    callbacks = [scheduler] if scheduler is not None else []
    if args.checkpoint:
        callbacks.append(_SaveCheckpoint(args.checkpoint, opt, scheduler, extra))
    split = args.validation_split
    if split is None:
        split = 0.1 if args.early_stopping is not None or args.checkpoint_best else 0.0
    return callbacks + _monitoring_callbacks(args, scheduler, extra), split


def _monitoring_callbacks(args, scheduler, extra):
    """EarlyStopping and the best-only checkpoint of --early-stopping / --checkpoint-best, both on
    the validation loss."""
    from . import callbacks

    out = []
    if args.checkpoint_best:
        out.append(callbacks.ModelCheckpoint(args.checkpoint_best, monitor="val_loss", save_best_only=True,
                                             include_optimizer=True, scheduler=scheduler, extra=extra))
    if args.early_stopping is not None:
        out.append(callbacks.EarlyStopping(monitor="val_loss", patience=args.early_stopping,
                                           restore_best_weights=True))
    return out


def _threads_per_rank():
    """Without --threads or OMP_NUM_THREADS, the ranks on one machine share its cores."""
    from . import distributed

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, cores // distributed.local_size())


def cmd_train(args):
    import lamina

    from . import io

    rank, world = 0, 1
    if args.distributed:
        from . import distributed
        try:
            rank, world = distributed.init()
        except distributed.MPIUnavailableError as e:
            print(f"lamina train --distributed: {e}", file=sys.stderr)
            return 1
    if args.threads:
        lamina.set_num_threads(args.threads)
    elif world > 1 and "OMP_NUM_THREADS" not in os.environ:
        lamina.set_num_threads(_threads_per_rank())
    ckpt = io.load_checkpoint(args.resume) if args.resume else None
    if ckpt is not None and ckpt.optimizer is None:
        raise ValueError(f"{args.resume} is a model, not a checkpoint (it has no optimizer state)")
    run = dict(ckpt.extra or {}) if ckpt is not None else {}
    seed = args.seed if args.seed is not None else run.get("seed", 0)
    batch_size = args.batch_size if args.batch_size is not None else run.get("batch_size", 64)
    lamina.seed(seed)
    Xtr, ytr, Xte, yte = _load_data(args.data)
    if args.limit:
        Xtr, ytr = Xtr[: args.limit], ytr[: args.limit]
        Xte, yte = Xte[: args.limit], yte[: args.limit]
    model, opt, scheduler, initial_epoch, name = _model_to_train(args, ckpt, run)
    callbacks, split = _train_callbacks(args, opt, scheduler, {"model": name, "seed": seed, "batch_size": batch_size})
    verbose = 0 if args.quiet or rank != 0 else 1
    if verbose:
        ranks = f" on {world} ranks" if args.distributed else ""
        resumed = f", resuming {args.resume} after epoch {initial_epoch}" if ckpt is not None else ""
        held = f" ({math.ceil(len(Xtr) * split)} held out for validation)" if split else ""
        print(f"lamina {lamina.__version__}: training {name} on {len(Xtr)} images{held}{ranks} "
              f"({lamina.backend_info()['isa']}, {lamina.get_num_threads()} threads), testing on {len(Xte)}"
              f"{resumed}", flush=True)
    guard = distributed.abort_on_error() if args.distributed else _nothing()
    with guard:  # distributed: an error on one rank ends every rank
        t0 = time.perf_counter()
        history = model.fit(Xtr, ytr, epochs=args.epochs, batch_size=batch_size, optimizer=opt,
                            shuffle=True, seed=seed, verbose=verbose, callbacks=callbacks,
                            initial_epoch=initial_epoch, distributed=args.distributed, validation_split=split)
        train_time = time.perf_counter() - t0
        loss, acc = distributed.evaluate(model, Xte, yte) if args.distributed else model.evaluate(Xte, yte)
        if rank != 0:
            return 0
        epochs_run = len(history.get("time", []))
        ips = len(Xtr) * epochs_run / sum(history["time"]) if epochs_run else 0.0
        print(f"test accuracy {acc * 100:.2f}% (loss {loss:.4f}) after {initial_epoch + epochs_run} epoch(s); "
              f"training {ips:,.0f} images/s ({train_time:.1f} s)")
        if args.out:
            io.save(model, args.out)
            print(f"saved {args.out}")
    return 0


def _nothing():
    import contextlib
    return contextlib.nullcontext()


def cmd_evaluate(args):
    from . import io

    if args.threads:
        import lamina
        lamina.set_num_threads(args.threads)
    try:
        model = io.load(args.model)
    except (ValueError, OSError) as e:
        print(f"lamina evaluate: {e}", file=sys.stderr)
        return 1
    X, y = _load_test(args.data)
    if args.limit:
        X, y = X[: args.limit], y[: args.limit]
    t0 = time.perf_counter()
    loss, acc = model.evaluate(X, y)
    dt = time.perf_counter() - t0
    print(f"{args.model}: test accuracy {acc * 100:.2f}% (loss {loss:.4f}) on {len(X)} images, "
          f"{len(X) / dt:,.0f} images/s")
    return 0


def _input_shape(text):
    try:
        shape = tuple(int(s) for s in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) < 2 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a shape like 1,1,28,28 (the batch axis first, >= 1 each)")
    return shape


def cmd_export(args):
    from . import io, onnx

    try:
        model = io.load(args.model)
    except (ValueError, OSError) as e:
        print(f"lamina export: {e}", file=sys.stderr)
        return 1
    try:
        onnx.export(model, args.output, args.input_shape, opset=args.opset)
    except (ImportError, NotImplementedError) as e:
        print(f"lamina export: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.output} (ONNX opset {args.opset or onnx.DEFAULT_OPSET}, input {args.input_shape} with a "
          "dynamic batch axis)")
    return 0


def cmd_info(args):
    import lamina

    info = dict(lamina.backend_info())
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(map(len, info))
        for k, v in info.items():
            if isinstance(v, (list, tuple)):
                v = ", ".join(map(str, v)) or "-"
            print(f"{k.ljust(width)}  {v}")
    return 0


def cmd_bench(argv):
    try:
        from . import bench
    except ImportError as e:
        print(f"lamina bench is not available in this build ({e})", file=sys.stderr)
        return 1
    return bench.main(argv)


def build_parser():
    p = argparse.ArgumentParser(prog="lamina", description="lamina: train and evaluate models, inspect the build.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train LeNet-5 or an MLP on MNIST (bundled sample by default)")
    t.add_argument("--model", choices=("lenet5", "mlp"), default="lenet5")
    t.add_argument("--epochs", type=int, default=5)
    t.add_argument("--batch-size", type=int, default=None,
                   help="the (global) minibatch size (default 64, or the checkpoint's with --resume)")
    t.add_argument("--lr", type=float, default=0.05)
    t.add_argument("--momentum", type=float, default=0.9)
    t.add_argument("--schedule", choices=("cosine", "none"), default="cosine",
                   help="learning-rate schedule over the epochs (default: cosine)")
    t.add_argument("--data", metavar="DIR", default=None, help="folder with MNIST-format IDX files")
    t.add_argument("--out", metavar="PATH", default="model.safetensors",
                   help="where to save the trained model ('' to skip)")
    t.add_argument("--seed", type=int, default=None, help="default 0, or the checkpoint's with --resume")
    t.add_argument("--threads", type=int, default=0, help="CPU threads (default: all)")
    t.add_argument("--quiet", action="store_true", help="no progress output")
    t.add_argument("--checkpoint", metavar="PATH", default=None, help="save a checkpoint after every epoch")
    t.add_argument("--resume", metavar="PATH", default=None, help="continue training from a checkpoint")
    t.add_argument("--distributed", action="store_true",
                   help="data-parallel on the ranks of mpiexec (needs lamina[mpi])")
    t.add_argument("--early-stopping", metavar="PATIENCE", type=int, default=None,
                   help="stop after PATIENCE epochs without a lower validation loss, keeping the best weights")
    t.add_argument("--checkpoint-best", metavar="PATH", default=None,
                   help="keep the checkpoint of the epoch with the lowest validation loss in PATH")
    t.add_argument("--validation-split", metavar="F", type=float, default=None,
                   help="the fraction of the training images held out for validation (default 0.1 with "
                        "--early-stopping or --checkpoint-best, else 0)")
    t.add_argument("--limit", type=int, default=0, help=argparse.SUPPRESS)  # tests: use N images
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="test accuracy of a saved model")
    e.add_argument("model", metavar="MODEL.safetensors")
    e.add_argument("--data", metavar="DIR", default=None)
    e.add_argument("--threads", type=int, default=0)
    e.add_argument("--limit", type=int, default=0, help=argparse.SUPPRESS)
    e.set_defaults(func=cmd_evaluate)

    x = sub.add_parser("export", help="write a saved model as ONNX (needs lamina[onnx])")
    x.add_argument("model", metavar="MODEL.safetensors")
    x.add_argument("output", metavar="MODEL.onnx")
    x.add_argument("--input-shape", type=_input_shape, required=True, metavar="N,C,H,W",
                   help="the input's shape, batch axis first (dynamic in the file), e.g. 1,1,28,28")
    x.add_argument("--opset", type=int, default=None, help="ONNX opset (default: lamina.onnx.DEFAULT_OPSET)")
    x.set_defaults(func=cmd_export)

    sub.add_parser("experiment", add_help=False,
                   help="run one of the talk's experiments: lamina experiment NAME [--out DIR] [--fast]")
    i = sub.add_parser("info", help="CPU path, threads, OpenMP/CUDA, compiler (backend_info)")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_info)

    sub.add_parser("bench", help="the kernel benchmark table vs NumPy (options: lamina bench -h)", add_help=False)
    return p


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        return cmd_bench(argv[1:])
    if argv and argv[0] == "experiment":
        from .experiments import main as experiment_main
        return experiment_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    batch_size = getattr(args, "batch_size", None)
    if getattr(args, "epochs", 1) < 0 or (batch_size is not None and batch_size < 1):
        parser.error("--epochs must be >= 0 and --batch-size >= 1")
    if (getattr(args, "early_stopping", None) or 0) < 0:
        parser.error("--early-stopping PATIENCE must be >= 0")
    split = getattr(args, "validation_split", None)
    if split is not None and not 0.0 < split < 1.0:
        parser.error("--validation-split must be in (0, 1)")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"lamina {args.command}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
