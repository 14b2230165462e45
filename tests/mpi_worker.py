"""The program each rank runs in tests/test_distributed.py (``mpiexec -n 2 python mpi_worker.py
SCENARIO OUT_DIR [options]``); it writes what the test checks into OUT_DIR.

Scenarios:
  fit            fit(distributed=True) on the problem of ``problem()``; rank 0 writes the
                 weights and the history, every rank the sizes of the batches it trained on
                 and what it printed.
  nan            as fit, with a NaN in a sample of rank 1's shard: every rank must stop at the
                 same batch with NonFiniteLossError and keep the same last good weights.
  raise-in-fit   rank 1 raises in a batch callback in the second epoch.
  raise-outside  rank 1 raises after init() while rank 0 waits in a Barrier.
  die            rank 1 ends its process (os._exit) in the middle of training.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lamina  # noqa: E402
from lamina import distributed, nn, optim  # noqa: E402


def problem(n=203, d=6, k=4, seed=0):
    """A small classification problem (n not a multiple of the batch sizes used: the last
    global batch is uneven)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d)) * 3
    y = rng.integers(0, k, n)
    return (centers[y] + rng.standard_normal((n, d))).astype(np.float32), y


def build(init_seed, backend="native", dtype="float32"):
    lamina.seed(init_seed)
    model = nn.Sequential(nn.Dense(6, 16), nn.ReLU(), nn.Dense(16, 12), nn.Tanh(), nn.Dense(12, 4))
    if dtype != "float32":
        model.astype(dtype)
    if backend != "native":
        if backend == "wrapped":
            import wrapped_backend
            wrapped_backend.register()
        model.to(backend)
    return model


def make_optimizer(name, model):
    if name == "sgd":
        return optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    if name == "adam":
        return optim.Adam(model.parameters(), lr=0.01)
    if name == "sfn":  # a closure optimiser: step(closure) evaluates the loss and gradients again
        return optim.SaddleFreeNewton(model.parameters(), lr=0.5, krylov_dim=4)
    raise ValueError(name)


def weights(model):
    return {str(i): p.numpy() for i, p in enumerate(model.parameters())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario")
    ap.add_argument("out")
    ap.add_argument("--backend", default="native")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--opt", default="sgd")
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--bucket-bytes", type=int, default=64 << 20)
    a = ap.parse_args()
    rank, world = distributed.init()
    X, y = problem()
    # A different initialisation on every rank: rank 0's reaches the others by the broadcast.
    model = build(0 if rank == 0 else 1000 + rank, a.backend, a.dtype)
    opt = make_optimizer(a.opt, model)
    sizes = []
    real_step = model.train_step

    def recording_step(xb, yb, *args, **kwargs):
        sizes.append(len(xb))
        return real_step(xb, yb, *args, **kwargs)

    model.train_step = recording_step
    callbacks = []
    if a.scenario == "raise-in-fit":
        class Fail:
            def on_batch_end(self, batch, logs):
                if rank == 1 and len(sizes) > 12:
                    raise RuntimeError("rank 1 fails on purpose")
        callbacks.append(Fail())
    if a.scenario == "die":
        class Die:
            def on_batch_end(self, batch, logs):
                if rank == 1 and len(sizes) > 12:
                    os._exit(3)
        callbacks.append(Die())
    if a.scenario == "raise-outside":
        if rank == 1:
            time.sleep(0.2)
            raise ValueError("rank 1 fails outside fit on purpose")
        distributed.comm().Barrier()  # rank 1 never comes
        return
    if a.scenario == "nan":
        # the first sample of rank 1's part of global batch 3 of epoch 1 (as fit cuts them)
        order = np.random.default_rng([7, 0]).permutation(len(X))
        shard = distributed.Shard(len(X), a.batch, 1, world)
        X[shard.order(order)[2 * shard.local_batch]] = np.nan
    if a.bucket_bytes != 64 << 20:
        model.optimizer = distributed.DistributedOptimizer(opt, bucket_bytes=a.bucket_bytes)
        opt = model.optimizer
    result = {"rank": rank, "world": world}
    try:
        hist = model.fit(X, y, epochs=a.epochs, batch_size=a.batch, optimizer=opt, seed=7, verbose=2,
                         callbacks=callbacks, distributed=True, validation_data=(X[:50], y[:50]))
        result["history"] = {k: v for k, v in hist.items()}
    except nn.NonFiniteLossError as e:
        result["nonfinite"] = [e.epoch, e.batch]
    result["sizes"] = sizes
    result["buckets"] = len(model.optimizer._layout or [])
    np.savez(os.path.join(a.out, f"weights{rank}.npz"), **weights(model))
    with open(os.path.join(a.out, f"rank{rank}.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
