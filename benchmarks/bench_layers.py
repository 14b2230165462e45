"""BatchNorm, LSTM and a CIFAR-size CNN with BatchNorm: lamina vs PyTorch (CPU), same run.

    python benchmarks/bench_layers.py                       # the table, 2 threads
    python benchmarks/bench_layers.py --threads 1,2 --repeats 9
    pytest benchmarks/bench_layers.py [--benchmark-disable]

- ``batch_norm`` forward + backward in training mode on (64, 32, 16, 16) and (256, 64, 8, 8):
  lamina's native ``batch_norm`` then ``batch_norm_backward`` (dx, dweight, dbias) against
  ``torch.nn.functional.batch_norm(training=True)`` + ``backward`` of the same upstream gradient
  (running statistics updated by both).
- LSTM training, N=64, T=32, F=H=128: ``Sequential(LSTM(128, 128), Dense(128, 10))`` trained by
  ``train_step`` (SGD, cross-entropy on the last hidden state) against ``torch.nn.LSTM
  (batch_first=True)`` + ``Linear`` and the canonical loop (forward, loss, zero_grad, backward,
  step), the same weights.
- the CIFAR-size CNN, (64, 3, 32, 32) images: [conv 3x3 pad 1, BatchNorm2D, ReLU] x 2 at 32
  channels, 2x2 max pool, the same twice at 64 channels, max pool, Flatten, Dense(4096, 10); SGD
  momentum 0.9; ``train_step`` against PyTorch's loop on the same weights and batches.

One timed call is one kernel pair or a few training steps; calls of the two alternate in blocks
with a pause between them (timing.compare), every block's time is kept, the median is the
result, and ratio = PyTorch's time / lamina's (> 1: lamina is faster). Before timing, each lamina
computation is checked once against lamina.reference (the numpy backend for the models): same
outputs, gradients and running statistics, or the run fails (check_batch_norm, check_training).

PyTorch is imported only here, for comparison; lamina never depends on it.
"""
import argparse
import os
import sys
import time

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lamina  # noqa: E402
from lamina import reference  # noqa: E402

BN_SHAPES = [(64, 32, 16, 16), (256, 64, 8, 8)]
LSTM_SHAPE = dict(N=64, T=32, F=128, H=128)
CNN_BATCH = 64
LR, MOMENTUM = 0.01, 0.9


class ResultMismatch(AssertionError):
    """A benchmarked lamina computation differs from lamina.reference."""


def _torch():
    try:
        import torch
        return torch
    except ImportError:
        return None


def _close(name, got, want, rtol=1e-4, atol_scale=1e-5):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        raise ResultMismatch(f"{name}: shape {got.shape}, the reference's {want.shape}")
    scale = max(float(np.max(np.abs(want), initial=0.0)), 1.0)
    err = np.abs(got - want)
    if not np.all(np.isfinite(got)) or not np.all(err <= rtol * np.abs(want) + atol_scale * scale):
        raise ResultMismatch(f"{name}: off the reference by {float(np.nanmax(err)):.3g} (scale {scale:.3g})")


def compare(fns, repeats=7, min_block_s=0.05, pause_s=0.05):
    """timing.compare's interleaved blocks, keeping every block: {name: median seconds per call}
    with ``.runs`` = {name: [seconds per call of each block]} (every run behind each median)."""
    calls = {}
    for name, f in fns.items():  # warm up, then size a block to min_block_s
        f()
        t0 = time.perf_counter()
        f()
        calls[name] = max(1, int(min_block_s / max(time.perf_counter() - t0, 1e-7)))
    runs = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            time.sleep(pause_s)
            t0 = time.perf_counter()
            for _ in range(calls[name]):
                fns[name]()
            runs[name].append((time.perf_counter() - t0) / calls[name])
    out = _Medians({name: float(np.median(v)) for name, v in runs.items()})
    out.runs = runs
    return out


class _Medians(dict):
    runs: dict


# -- batch_norm ---------------------------------------------------------------------------------------
def bn_inputs(shape, seed=0):
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = (rng.standard_normal(shape, dtype=np.float32) * 2 + 0.5).astype(np.float32)
    g = rng.standard_normal(shape, dtype=np.float32)
    w = (1 + 0.1 * rng.standard_normal(C)).astype(np.float32)
    b = (0.1 * rng.standard_normal(C)).astype(np.float32)
    return x, g, w, b


def lamina_batch_norm(shape, kernels=None):
    """A callable: one training-mode forward + backward of lamina's batch_norm kernels on ``shape``;
    returns (y, dx, dw, db, running_mean, running_var)."""
    k = kernels or lamina.get_backend("native")
    x, g, w, b = bn_inputs(shape)
    C = shape[1]
    rm, rv = np.zeros(C, np.float32), np.ones(C, np.float32)
    y = np.empty_like(x)

    def run():
        y_, mean, invstd = k.batch_norm(x, rm, rv, w, b, training=True, momentum=0.1, eps=1e-5, out=y)
        dx, dw, db = k.batch_norm_backward(g, x, w, mean, invstd, training=True)
        return y_, dx, dw, db, rm, rv
    return run


def check_batch_norm(shape):
    """lamina's native kernels once against lamina.reference on ``shape`` (y, dx, dweight,
    dbias and both running statistics); raises ResultMismatch."""
    got = lamina_batch_norm(shape)()
    want = lamina_batch_norm(shape, kernels=reference)()
    for name, a, b in zip(("y", "dx", "dweight", "dbias", "running_mean", "running_var"), got, want):
        _close(f"batch_norm {shape} {name}", a, b, rtol=1e-3, atol_scale=1e-4)


def torch_batch_norm(torch, shape):
    x, g, w, b = bn_inputs(shape)
    C = shape[1]
    xt = torch.from_numpy(x).requires_grad_(True)
    wt, bt = torch.from_numpy(w).requires_grad_(True), torch.from_numpy(b).requires_grad_(True)
    gt = torch.from_numpy(g)
    rm, rv = torch.zeros(C), torch.ones(C)
    F = torch.nn.functional

    def run():
        xt.grad = wt.grad = bt.grad = None
        y = F.batch_norm(xt, rm, rv, wt, bt, training=True, momentum=0.1, eps=1e-5)
        y.backward(gt)
    return run


def batch_norm_rows(torch, threads, repeats):
    out = []
    for shape in BN_SHAPES:
        check_batch_norm(shape)
        fns = {"lamina": lamina_batch_norm(shape)}
        if torch is not None:
            fns["torch"] = torch_batch_norm(torch, shape)
        t = compare(fns, repeats=repeats, min_block_s=0.05, pause_s=0.05)
        out.append(_row("batch_norm forward + backward", str(shape), threads, t))
    return out


# -- models: LSTM and the CIFAR-size CNN with BatchNorm ------------------------------------------------
def lstm_model():
    from lamina import nn
    s = LSTM_SHAPE
    return nn.Sequential(nn.LSTM(s["F"], s["H"]), nn.Dense(s["H"], 10))


def cifar_cnn():
    from lamina import nn
    layers = []
    c_in = 3
    for c in (32, 64):
        for _ in range(2):
            layers += [nn.Conv2D(c_in, c, 3, padding=1), nn.BatchNorm2D(c), nn.ReLU()]
            c_in = c
        layers.append(nn.MaxPool2D(2))
    return nn.Sequential(*layers, nn.Flatten(), nn.Dense(64 * 8 * 8, 10))


MODELS = {"lstm": (lstm_model, 0.0), "cifar_cnn": (cifar_cnn, MOMENTUM)}  # builder, SGD momentum


def model_data(name, batches, seed=0):
    """``batches`` (x, y) minibatches of random inputs and labels for the model ``name``."""
    rng = np.random.default_rng(seed)
    s = LSTM_SHAPE
    shape = (s["N"], s["T"], s["F"]) if name == "lstm" else (CNN_BATCH, 3, 32, 32)
    return [(rng.standard_normal(shape, dtype=np.float32), rng.integers(0, 10, shape[0]).astype(np.int64))
            for _ in range(batches)]


def lamina_trainer(name, data, backend="native"):
    """A callable running one training step per batch of ``data`` (train_step); ``.model``."""
    from lamina import optim
    build, momentum = MODELS[name]
    lamina.seed(0)
    model = build().to(backend)
    model.compile(optim.SGD(model.parameters(), lr=LR, momentum=momentum), "cross_entropy")

    def run():
        for xb, yb in data:
            loss, _ = model.train_step(xb, yb)
        return loss
    run.model = model
    return run


def torch_model(torch, name):
    """(module, forward, {lamina state name: torch state name}) of the same architecture."""
    nn = torch.nn
    if name == "lstm":
        s = LSTM_SHAPE
        mod = nn.ModuleDict({"lstm": nn.LSTM(s["F"], s["H"], batch_first=True), "fc": nn.Linear(s["H"], 10)})

        def forward(x):
            out, _ = mod["lstm"](x)
            return mod["fc"](out[:, -1])
        names = {f"0.{k}": f"lstm.{k}_l0" for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        names.update({"1.weight": "fc.weight", "1.bias": "fc.bias"})
        return mod, forward, names
    layers, c_in = [], 3
    for c in (32, 64):
        for _ in range(2):
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU()]
            c_in = c
        layers.append(nn.MaxPool2d(2))
    mod = nn.Sequential(*layers, nn.Flatten(), nn.Linear(64 * 8 * 8, 10))
    return mod, mod, {k: k for k in mod.state_dict()}  # lamina's Sequential names are PyTorch's


def torch_trainer(torch, name, data, model):
    """PyTorch's loop (forward, cross_entropy, zero_grad, backward, step) on the same
    architecture, started from ``model``'s (lamina's) weights and buffers."""
    mod, forward, names = torch_model(torch, name)
    ours = dict(model.named_parameters())
    ours.update(model.named_buffers())
    if set(ours) != set(names):
        raise ResultMismatch(f"{name}: lamina's state {sorted(ours)} is not PyTorch's {sorted(names)}")
    with torch.no_grad():
        state = mod.state_dict(keep_vars=True)
        for ln, tn in names.items():
            value = np.ascontiguousarray(ours[ln].numpy())
            if value.size == 1 and state[tn].numel() == 1:  # num_batches_tracked: () in PyTorch
                value = value.reshape(tuple(state[tn].shape))
            if tuple(state[tn].shape) != value.shape:
                raise ResultMismatch(f"{name}: {ln} has shape {value.shape}, PyTorch's {tn} {tuple(state[tn].shape)}")
            state[tn].copy_(torch.from_numpy(value))
    _, momentum = MODELS[name]
    opt = torch.optim.SGD(mod.parameters(), lr=LR, momentum=momentum)
    tdata = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in data]
    F = torch.nn.functional

    def run():
        for xb, yb in tdata:
            loss = F.cross_entropy(forward(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return float(loss.detach())
    run.module = mod
    return run


class TrainingMismatch(ResultMismatch):
    """lamina's training steps differ from the same steps on the numpy backend."""


def check_training(name, steps=2, rtol=1e-3):
    """The benchmarked model's ``steps`` training steps on the native backend against the same
    steps on the numpy backend (lamina.reference's kernels): equal losses and parameter changes
    within ``rtol`` of the change's norm (+ 1e-6). Raises TrainingMismatch; returns the two losses."""
    data = model_data(name, steps, seed=1)
    runs = {be: lamina_trainer(name, data, backend=be) for be in ("native", "numpy")}
    before = [p.numpy().astype(np.float64) for p in runs["numpy"].model.parameters()]
    losses = {be: float(run()) for be, run in runs.items()}
    if not np.isfinite(losses["native"]) or abs(losses["native"] - losses["numpy"]) > rtol * abs(losses["numpy"]):
        raise TrainingMismatch(f"{name}: loss {losses['native']:.6g} native, {losses['numpy']:.6g} numpy backend")
    for p, q, w0 in zip(runs["native"].model.parameters(), runs["numpy"].model.parameters(), before):
        mine, ref = p.numpy().astype(np.float64), q.numpy().astype(np.float64)
        # (+ 1e-6: a conv bias before BatchNorm has a zero gradient, so it moves by rounding only)
        if not np.linalg.norm(mine - ref) <= rtol * np.linalg.norm(ref - w0) + 1e-6:
            raise TrainingMismatch(f"{name}: parameter {p.name or p.shape} off the numpy backend's after {steps} steps")
    return losses["native"], losses["numpy"]


def training_rows(torch, threads, repeats, steps=3):
    out = []
    for name in MODELS:
        check_training(name)
        data = model_data(name, steps)
        mine = lamina_trainer(name, data)
        fns = {"lamina": mine}
        if torch is not None:
            fns["torch"] = torch_trainer(torch, name, data, mine.model)
            # the same weights and batches: the first call's losses agree (so the models are alike)
            a, b = mine(), fns["torch"]()
            if not abs(a - b) <= 1e-4 * abs(b):
                raise ResultMismatch(f"{name}: loss {a:.6g} in lamina, {b:.6g} in PyTorch from the same weights")
        t = compare(fns, repeats=repeats, min_block_s=0.2, pause_s=0.2)
        label = "LSTM training (SGD)" if name == "lstm" else "CIFAR-size CNN + BatchNorm training (SGD momentum)"
        shape = "N=64, T=32, F=H=128" if name == "lstm" else f"({CNN_BATCH}, 3, 32, 32)"
        out.append(_row(label, shape, threads, t, steps=steps))
    return out


# -- rows -----------------------------------------------------------------------------------------------
def _row(kernel, shape, threads, t, **extra):
    row = {"kernel": kernel, "shape": shape, "threads": threads, "lamina_ms": 1e3 * t["lamina"]}
    if "torch" in t:
        row.update(baseline="torch", baseline_ms=1e3 * t["torch"], ratio=t["torch"] / t["lamina"])
    if hasattr(t, "runs"):
        row["runs_ms"] = {k: [round(1e3 * v, 4) for v in vs] for k, vs in t.runs.items()}
    row.update(extra)
    return row


def rows(thread_counts=(2,), repeats=7):
    """Every row of this file, per thread count (lamina and PyTorch on the same count)."""
    torch = _torch()
    out = []
    for nt in thread_counts:
        before = lamina.get_num_threads()
        lamina.set_num_threads(nt)
        if torch is not None:
            torch.set_num_threads(nt)
        try:
            out += batch_norm_rows(torch, nt, repeats) + training_rows(torch, nt, repeats)
        finally:
            lamina.set_num_threads(before)
    return out


def print_table(rs):
    print("| benchmark | shape | threads | lamina ms | PyTorch ms | ratio (PyTorch / lamina) |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rs:
        base = f"{r['baseline_ms']:.3f}" if "baseline_ms" in r else "-"
        ratio = f"{r['ratio']:.2f}" if "ratio" in r else "-"
        print(f"| {r['kernel']} | {r['shape']} | {r['threads']} | {r['lamina_ms']:.3f} | {base} | {ratio} |")


# -- pytest-benchmark -----------------------------------------------------------------------------------
# (parametrized by "lib", not "impl": these check themselves before timing, with check_batch_norm and
# check_training, instead of through conftest.py's kernel twins)
@pytest.mark.parametrize("lib", ["lamina", "torch"])
@pytest.mark.parametrize("shape", BN_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_batch_norm_forward_backward(benchmark, shape, lib):
    if lib == "torch":
        run = torch_batch_norm(pytest.importorskip("torch"), shape)
    else:
        check_batch_norm(shape)
        run = lamina_batch_norm(shape)
    benchmark.group = f"batch_norm fwd+bwd {shape}"
    benchmark(run)


@pytest.mark.parametrize("lib", ["lamina", "torch"])
@pytest.mark.parametrize("name", list(MODELS))
def test_training_steps(benchmark, name, lib):
    data = model_data(name, 2)
    mine = lamina_trainer(name, data)
    if lib == "torch":
        run = torch_trainer(pytest.importorskip("torch"), name, data, mine.model)
    else:
        check_training(name)
        run = mine
    benchmark.group = f"{name} training, 2 steps"
    benchmark(run)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", default="2", help="comma-separated thread counts (default 2)")
    p.add_argument("--repeats", type=int, default=7)
    a = p.parse_args()
    torch = _torch()
    info = lamina.backend_info()
    print(f"lamina {lamina.__version__}  isa={info['isa']}  cpu_count={os.cpu_count()}  "
          f"torch {torch.__version__ if torch else 'absent'}  load {os.getloadavg()}")
    try:
        rs = rows(tuple(int(t) for t in a.threads.split(",")), a.repeats)
    except ResultMismatch as e:
        sys.exit(f"bench_layers: wrong result, not timed: {e}")
    print_table(rs)
    for r in rs:
        if "runs_ms" in r:
            print(f"{r['kernel']} {r['shape']}: every block (ms per call): {r['runs_ms']}")
    print(f"load after: {os.getloadavg()}")
