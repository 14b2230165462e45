"""Training throughput, peak memory and import time: lamina vs PyTorch (CPU), same run.

    python benchmarks/bench_training.py                   # the table (2 threads by default)
    python benchmarks/bench_training.py --threads 1,2 --steps 20
    python benchmarks/bench_training.py --models vgg,cifar,lenet5 --gemm-too --throughput-only
    pytest benchmarks/bench_training.py [--benchmark-disable]

Throughput: LeNet-5 (conv 6@5x5 pad 2, ReLU, maxpool 2, conv 16@5x5, ReLU, maxpool 2, dense
400-120-84-10) at batch 64 and the MLP 784-100-10 at batch 32, both SGD momentum 0.9 with
cross-entropy, on the bundled MNIST images. lamina runs ``model.fit`` (shuffled batches
gathered into a reused buffer, accuracy bookkeeping included); PyTorch runs the canonical loop
(index a shuffled batch, forward, cross_entropy, zero_grad, backward, step). One timed call is
``--steps`` training steps; calls of the two alternate in blocks with a pause between them
(timing.compare), the median is kept, and ratio = lamina images/s / PyTorch images/s. Before
it is timed, lamina's run is checked once against the same steps on the numpy backend
(lamina.reference's kernels): equal loss and parameter updates (check_training), or the run fails.

Peak RSS: each library trains LeNet-5 for one epoch on 8,000 images in a fresh subprocess
(data loaded by the same NumPy code for both) and reports its ru_maxrss; ratio = PyTorch's
/ lamina's (> 1: lamina uses less). Import time: ``python -c "import lamina"`` in subprocesses
(median of 7), held to the 0.3 s target.

PyTorch is imported only here, for comparison; lamina never depends on it.
"""
import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lamina  # noqa: E402
from timing import compare, with_conv_algo  # noqa: E402

HERE = os.path.abspath(__file__)
LR, MOMENTUM = 0.05, 0.9
MODELS = {"lenet5": 64, "mlp": 32}  # model -> batch size of the target
# The 3x32x32 networks (``--models vgg,cifar``), trained on CIFAR-sized random images:
#   vgg:   3x3 convs (pad 1) 3-32-32, pool, 64-64, pool, 128, pool, dense 2048-10
#   cifar: conv 32@3x3 pad 1, ReLU, pool, conv 64@3x3 pad 1, ReLU, pool, dense 4096-128-10
CIFAR_MODELS = {"vgg": 64, "cifar": 64}
ALL_MODELS = {**MODELS, **CIFAR_MODELS}
# Their learning rate: at 0.05 the VGG-style net's loss on random labels grows in the first
# steps, and a run that diverges amplifies float32 rounding past check_training's tolerance.
CIFAR_LR = 0.01


def lr_for(model_name):
    return CIFAR_LR if model_name in CIFAR_MODELS else LR


def _spec(model_name):
    """The layers of a 3x32x32 model as (kind, args) tuples, read by both libraries' builders."""
    if model_name == "vgg":
        return [("conv", 3, 32), ("conv", 32, 32), ("pool",), ("conv", 32, 64), ("conv", 64, 64), ("pool",),
                ("conv", 64, 128), ("pool",), ("flatten",), ("dense", 2048, 10)]
    if model_name == "cifar":
        return [("conv", 3, 32), ("pool",), ("conv", 32, 64), ("pool",), ("flatten",), ("dense", 4096, 128),
                ("relu",), ("dense", 128, 10)]
    raise KeyError(model_name)


def lamina_model(model_name):
    from lamina import models, nn
    if model_name in models.MODELS:
        return models.MODELS[model_name]()
    layers = []
    for kind, *a in _spec(model_name):  # every conv is followed by a ReLU
        layers += {"conv": lambda: [nn.Conv2D(a[0], a[1], 3, padding=1), nn.ReLU()],
                   "pool": lambda: [nn.MaxPool2D(2)], "flatten": lambda: [nn.Flatten()],
                   "dense": lambda: [nn.Dense(a[0], a[1])], "relu": lambda: [nn.ReLU()]}[kind]()
    return nn.Sequential(*layers)


def cifar_numpy(n=4096, seed=0):
    """CIFAR-sized data: n random 3x32x32 float32 images in [0, 1) and labels 0..9 (the timing
    does not depend on the pixels)."""
    rng = np.random.default_rng(seed)
    return rng.random((n, 3, 32, 32), dtype=np.float32), rng.integers(0, 10, n).astype(np.int64)


def data_for(model_name, n):
    return cifar_numpy(n) if model_name in CIFAR_MODELS else mnist_numpy(n)


def mnist_numpy(n=10000):
    """The bundled MNIST sample as float32 (N, 1, 28, 28) / int64 labels, read with NumPy only
    (so the PyTorch subprocess does not import lamina)."""
    folder = os.path.join(os.path.dirname(HERE), "..", "python", "lamina", "datasets", "data", "mnist")
    try:
        import lamina.datasets
        folder = str(lamina.datasets.MNIST_DIR)
    except ImportError:
        pass
    with gzip.open(os.path.join(folder, "t10k-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)[:n]
    with gzip.open(os.path.join(folder, "t10k-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)[:n]
    return (images / np.float32(255)).astype(np.float32), labels.astype(np.int64)


# -- the two implementations ---------------------------------------------------------------------
def lamina_trainer(model_name, batch, steps, X, y, backend="native"):
    """A callable that runs the next `steps` training steps (returns fit's History); its
    ``model`` attribute is the model it trains."""
    from lamina import optim
    lamina.seed(0)
    model = lamina_model(model_name).to(backend)
    opt = optim.SGD(model.parameters(), lr=lr_for(model_name), momentum=MOMENTUM)
    n = batch * steps
    state = {"epoch": 0}

    def run():  # `steps` training steps through the public fit loop
        lo = (state["epoch"] * n) % (len(X) - n + 1)
        hist = model.fit(X[lo:lo + n], y[lo:lo + n], epochs=1, batch_size=batch, optimizer=opt,
                         seed=state["epoch"], verbose=0)
        state["epoch"] += 1
        return hist
    run.model = model
    return run


class TrainingMismatch(AssertionError):
    """lamina's training run differs from the same steps on the numpy backend."""


def check_training(model_name, batch, steps, X, y, backend="native", rtol=1e-3):
    """The benchmarked lamina run, once, against the same `steps` steps (same initial weights,
    batches and optimiser) on the numpy backend, whose kernels are lamina.reference: the loss
    must be finite and equal, and every parameter's change (w_after - w_before) equal within
    ``rtol`` of the change's norm (float32 gives ~1e-6 after 20 steps; a kernel that is wrong
    by 1% gives ~1e-2). Raises TrainingMismatch; returns the two losses."""
    runs = {be: lamina_trainer(model_name, batch, steps, X, y, backend=be) for be in (backend, "numpy")}
    before = [p.numpy().astype(np.float64) for p in runs["numpy"].model.parameters()]
    losses, after = {}, {}
    where = f"{model_name} training, {steps} step(s) of batch {batch}"
    for be, run in runs.items():
        try:
            losses[be] = float(run()["loss"][-1])
        except FloatingPointError as e:  # fit's NonFiniteLossError: a loss that is NaN or inf
            raise TrainingMismatch(f"{where}: on {be}: {e}") from e
        after[be] = [p.numpy().astype(np.float64) for p in run.model.parameters()]
    if not np.isfinite(losses[backend]):
        raise TrainingMismatch(f"{where}: the loss is {losses[backend]}")
    if not abs(losses[backend] - losses["numpy"]) <= rtol * abs(losses["numpy"]):
        raise TrainingMismatch(f"{where}: loss {losses[backend]:.6g} on {backend}, "
                               f"{losses['numpy']:.6g} on the numpy backend")
    params = runs["numpy"].model.parameters()
    for p, w0, mine, ref in zip(params, before, after[backend], after["numpy"]):
        ref_change = np.linalg.norm(ref - w0)
        err = np.linalg.norm(mine - ref)
        if not err <= rtol * ref_change + 1e-12:
            raise TrainingMismatch(f"{where}: parameter {p.name or tuple(p.shape)} moved by {ref_change:.4g} on "
                                   f"the numpy backend, and {backend} ends {err:.4g} away from it")
    return losses[backend], losses["numpy"]


def torch_model(torch, model_name):
    nn = torch.nn
    if model_name in CIFAR_MODELS:
        layers = []
        for kind, *a in _spec(model_name):
            layers += {"conv": lambda: [nn.Conv2d(a[0], a[1], 3, padding=1), nn.ReLU()],
                       "pool": lambda: [nn.MaxPool2d(2)], "flatten": lambda: [nn.Flatten()],
                       "dense": lambda: [nn.Linear(a[0], a[1])], "relu": lambda: [nn.ReLU()]}[kind]()
        return nn.Sequential(*layers)
    if model_name == "lenet5":
        return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5),
                             nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(),
                             nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10))


def torch_trainer(torch, model_name, batch, steps, X, y):
    torch.manual_seed(0)
    model = torch_model(torch, model_name)
    opt = torch.optim.SGD(model.parameters(), lr=lr_for(model_name), momentum=MOMENTUM)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    n = batch * steps
    state = {"epoch": 0}
    F = torch.nn.functional

    def run():
        lo = (state["epoch"] * n) % (len(X) - n + 1)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(state["epoch"])) + lo
        for b in range(steps):
            idx = perm[b * batch:(b + 1) * batch]
            xb, yb = Xt[idx], yt[idx]
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        state["epoch"] += 1
    return run


def _torch():
    try:
        import torch
        return torch
    except ImportError:
        return None


# -- rows ---------------------------------------------------------------------------------------------
def throughput_rows(thread_counts=(2,), steps=20, repeats=7, models=tuple(MODELS), gemm_too=False):
    """One row per (threads, model). gemm_too: also time lamina with every convolution on
    im2col + GEMM (no Winograd), interleaved in the same blocks (column "lamina gemm")."""
    torch = _torch()
    out = []
    for nt in thread_counts:
        before = lamina.get_num_threads()
        lamina.set_num_threads(nt)
        if torch is not None:
            torch.set_num_threads(nt)
        try:
            for model_name in models:
                batch = ALL_MODELS[model_name]
                X, y = data_for(model_name, 8000 if model_name in MODELS else 4096)
                # once, before timing. The 3x32x32 models: one step (the numpy backend is slow)
                # and rtol 5e-3: Winograd F(4x4, 3x3) rounds differently from the reference
                # (5-40x the direct float32 error), and through the ReLUs and max-pool ties of
                # 5 conv layers one step's parameter change then differs by up to ~1e-3 of its
                # norm (measured); a kernel wrong by 1% still differs by ~1e-2.
                if model_name in MODELS:
                    check_training(model_name, batch, steps, X, y)
                else:
                    check_training(model_name, batch, 1, X, y, rtol=5e-3)
                fns = {"lamina": lamina_trainer(model_name, batch, steps, X, y)}
                if gemm_too:
                    fns["lamina gemm"] = with_conv_algo(lamina_trainer(model_name, batch, steps, X, y), "gemm")
                if torch is not None:
                    fns["torch"] = torch_trainer(torch, model_name, batch, steps, X, y)
                t = compare(fns, repeats=repeats, min_block_s=0.1, pause_s=0.15)
                images = batch * steps
                row = {"benchmark": f"{model_name} training (SGD momentum)", "shape": f"batch {batch}",
                       "threads": nt, "unit": "images/s", "lamina": images / t["lamina"]}
                if "torch" in t:
                    row.update(baseline="torch", baseline_value=images / t["torch"], ratio=t["torch"] / t["lamina"])
                if gemm_too:
                    row["lamina_gemm"] = images / t["lamina gemm"]
                    if "torch" in t:
                        row["ratio_gemm"] = t["torch"] / t["lamina gemm"]
                out.append(row)
        finally:
            lamina.set_num_threads(before)
    return out


def _peak_rss_kib():
    """This process's peak resident set (VmHWM: per address space, so unlike ru_maxrss it does
    not inherit the high-water mark of the parent that forked us)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _rss_child(lib, threads, n=8000, epochs=1):
    """Runs in a subprocess: trains LeNet-5 for `epochs` on n images, prints peak RSS (KiB)."""
    X, y = mnist_numpy(n)
    if lib == "lamina":
        from lamina import models, optim
        lamina.set_num_threads(threads)
        model = models.lenet5()
        model.fit(X, y, epochs=epochs, batch_size=64, optimizer=optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM),
                  seed=0, verbose=0)
    else:
        import torch
        torch.set_num_threads(threads)
        run = torch_trainer(torch, "lenet5", 64, n // 64, X, y)
        for _ in range(epochs):
            run()
    print(json.dumps({"maxrss_kib": _peak_rss_kib()}))


def _child(args):
    env = dict(os.environ)
    if args[0] == "lamina-import":
        cmd = [sys.executable, "-c", "import lamina"]
    else:
        cmd = [sys.executable, HERE, "--rss-child", *args]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{r.stderr}")
    return dt, r.stdout


def memory_rows(threads=2):
    libs = ["lamina"] + (["torch"] if _torch() is not None else [])
    rss = {}
    for lib in libs:
        _, out = _child([lib, str(threads)])
        rss[lib] = json.loads(out.strip().splitlines()[-1])["maxrss_kib"] / 1024
    row = {"benchmark": "peak RSS, LeNet-5 training run", "shape": "8000 images, 1 epoch", "threads": threads,
           "unit": "MiB", "lamina": rss["lamina"]}
    if "torch" in rss:
        row.update(baseline="torch", baseline_value=rss["torch"], ratio=rss["torch"] / rss["lamina"])
    return [row]


def import_rows(repeats=7):
    times = [_child(["lamina-import"])[0] for _ in range(repeats)]
    t = statistics.median(times)
    return [{"benchmark": "import lamina (fresh interpreter)", "shape": f"median of {repeats}", "threads": "-",
             "unit": "s", "lamina": t, "baseline": "target", "baseline_value": 0.3, "ratio": 0.3 / t}]


def rows(thread_counts=(2,), steps=20, repeats=7, models=tuple(MODELS), gemm_too=False):
    """Every comparison row of this file (throughput, peak memory, import time)."""
    return (throughput_rows(thread_counts, steps, repeats, models, gemm_too) + memory_rows(max(thread_counts))
            + import_rows())


def print_table(rs):
    gemm = any("lamina_gemm" in r for r in rs)
    extra = " lamina gemm | ratio gemm |" if gemm else ""
    print("| benchmark | shape | threads | lamina | baseline | baseline value | unit | ratio |" + extra)
    print("|---|---|---:|---:|---|---:|---|---:|" + ("---:|---:|" if gemm else ""))
    for r in rs:
        fmt = "{:,.3f}" if r["unit"] == "s" else "{:,.0f}"
        base = fmt.format(r["baseline_value"]) if "baseline_value" in r else "-"
        ratio = f"{r['ratio']:.2f}" if "ratio" in r else "-"
        tail = ""
        if gemm:
            tail = (f" {fmt.format(r['lamina_gemm'])} | {r['ratio_gemm']:.2f} |" if "ratio_gemm" in r else " - | - |")
        print(f"| {r['benchmark']} | {r['shape']} | {r['threads']} | {fmt.format(r['lamina'])} | "
              f"{r.get('baseline', '-')} | {base} | {r['unit']} | {ratio} |" + tail)


# -- pytest-benchmark ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mnist():
    return mnist_numpy(2048)


@pytest.mark.parametrize("impl", ["lamina", "torch"])
@pytest.mark.parametrize("model_name", list(MODELS))
def test_training_steps(benchmark, mnist, model_name, impl):
    X, y = mnist
    batch, steps = MODELS[model_name], 5
    if impl == "torch":
        torch = pytest.importorskip("torch")
        run = torch_trainer(torch, model_name, batch, steps, X, y)
    else:
        check_training(model_name, batch, steps, X, y)
        run = lamina_trainer(model_name, batch, steps, X, y)
    benchmark.group = f"{model_name} train, batch {batch}, {steps} steps"
    benchmark(run)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", default="2", help="comma-separated thread counts (default 2)")
    p.add_argument("--steps", type=int, default=20, help="training steps per timed call")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--models", default=",".join(MODELS),
                   help=f"comma-separated, of {', '.join(ALL_MODELS)} (default {','.join(MODELS)})")
    p.add_argument("--gemm-too", action="store_true",
                   help="also time lamina with the convolutions forced to im2col + GEMM (conv_algo=gemm)")
    p.add_argument("--throughput-only", action="store_true", help="skip the peak-RSS and import rows")
    p.add_argument("--rss-child", nargs=2, metavar=("LIB", "THREADS"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.rss_child:
        _rss_child(a.rss_child[0], int(a.rss_child[1]))
        sys.exit(0)
    nts = tuple(int(t) for t in a.threads.split(","))
    info = lamina.backend_info()
    torch = _torch()
    print(f"lamina {lamina.__version__}  isa={info['isa']}  cpu_count={os.cpu_count()}  "
          f"torch {torch.__version__ if torch else 'absent'}  backend {lamina.backend.get_backend('native')!r}")
    names = tuple(m for m in a.models.split(",") if m)
    unknown = [m for m in names if m not in ALL_MODELS]
    if unknown:
        sys.exit(f"bench_training: unknown model(s) {unknown}; known: {list(ALL_MODELS)}")
    try:
        if a.throughput_only:
            print_table(throughput_rows(nts, a.steps, a.repeats, names, a.gemm_too))
        else:
            print_table(rows(nts, a.steps, a.repeats, names, a.gemm_too))
    except TrainingMismatch as e:
        sys.exit(f"bench_training: wrong result, not timed: {e}")
