"""lamina's CUDA backend vs PyTorch CUDA, in one run (benchmarks/gpu/check.sh runs it).

Rows: conv2d at the shapes of benchmarks/bench_conv.py (fwd, fwd+bwd), at batch 64 and 256;
softmax cross-entropy (loss + gradient); the SGD update (momentum) of LeNet-5's parameters;
LeNet-5 training images/s at batch 64 and 256 against PyTorch eager and PyTorch with the
training step captured in a CUDA graph. Both sides compute in full float32 (PyTorch's TF32
switches off, lamina.cuda.allow_tf32 False). Times are medians of CUDA-event-timed repeats after
warm-up; lamina's kernel calls are timed end to end (Python included), as a user sees them.

    python benchmarks/gpu/bench_cuda.py [--quick] [--out table.md]
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import lamina  # noqa: E402
from lamina import backend, nn, optim  # noqa: E402

CONV = [(1, 28, 6, 5, 2), (6, 14, 16, 5, 0), (3, 32, 32, 3, 1), (32, 16, 64, 3, 1)]  # (C, H, O, k, pad)


def timed(fn, sync, warmup=3, repeats=20):
    for _ in range(warmup):
        fn()
    sync()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def lenet_lamina():
    return nn.Sequential(
        nn.Conv2D(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2D(2),
        nn.Conv2D(6, 16, 5), nn.ReLU(), nn.MaxPool2D(2),
        nn.Flatten(), nn.Dense(400, 120), nn.ReLU(), nn.Dense(120, 84), nn.ReLU(), nn.Dense(84, 10))


def lenet_torch(torch):
    tn = torch.nn
    return tn.Sequential(
        tn.Conv2d(1, 6, 5, padding=2), tn.ReLU(), tn.MaxPool2d(2),
        tn.Conv2d(6, 16, 5), tn.ReLU(), tn.MaxPool2d(2),
        tn.Flatten(), tn.Linear(400, 120), tn.ReLU(), tn.Linear(120, 84), tn.ReLU(), tn.Linear(84, 10))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import torch
    import torch.nn.functional as F
    import lamina.cuda as lc
    # Full float32 on PyTorch's side, as lamina's: cuDNN's convolutions default to TF32 on
    # Ampere and newer (a 1e-3 relative error that the correctness checks would see as lamina's),
    # and the timings then compare the same arithmetic.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    be = backend.get_backend("cuda")
    tsync = torch.cuda.synchronize
    lsync = lc.synchronize
    reps = 5 if args.quick else 20
    rows = []

    def row(name, t_lamina, t_torch, unit="ms"):
        rows.append((name, t_lamina, t_torch))
        print(f"{name:58s} lamina {t_lamina * 1e3:9.3f} ms  torch {t_torch * 1e3:9.3f} ms  "
              f"ratio {t_torch / t_lamina:6.2f}x", flush=True)

    rng = np.random.default_rng(0)
    for N in (64, 256):
        for C, H, O, k, p in CONV:
            x = rng.standard_normal((N, C, H, H)).astype(np.float32)
            w = (rng.standard_normal((O, C, k, k)) / np.sqrt(C * k * k)).astype(np.float32)
            b = rng.standard_normal(O).astype(np.float32)
            dx, dw, db = be.asarray(x), be.asarray(w), be.asarray(b)
            tx, tw, tb = (torch.from_numpy(a).cuda() for a in (x, w, b))
            y = be.conv2d(dx, dw, db, padding=p)
            gy = be.asarray(rng.standard_normal(y.shape).astype(np.float32))
            tgy = torch.from_numpy(be.to_numpy(gy)).cuda()
            # correctness first
            ty = F.conv2d(tx, tw, tb, padding=p)
            err = np.abs(be.to_numpy(y) - ty.cpu().numpy()).max()
            assert err < 1e-3, f"conv2d differs from torch by {err}"
            label = f"conv N{N} C{C} {H}x{H} -> O{O} k{k} pad{p}"
            row(label + " fwd", timed(lambda: be.conv2d(dx, dw, db, padding=p), lsync, repeats=reps),
                timed(lambda: F.conv2d(tx, tw, tb, padding=p), tsync, repeats=reps))
            txr, twr, tbr = (t.clone().requires_grad_(True) for t in (tx, tw, tb))

            def t_fb():
                out = F.conv2d(txr, twr, tbr, padding=p)
                out.backward(tgy)

            def l_fb():
                be.conv2d(dx, dw, db, padding=p)
                be.conv2d_backward(dx, dw, gy, padding=p)
            row(label + " fwd+bwd", timed(l_fb, lsync, repeats=reps), timed(t_fb, tsync, repeats=reps))

    for N in (64, 256):
        logits = rng.standard_normal((N, 10)).astype(np.float32)
        labels = rng.integers(0, 10, N)
        dl, dlab = be.asarray(logits), be.asarray(labels.astype(np.int64))
        tl = torch.from_numpy(logits).cuda().requires_grad_(True)
        tlab = torch.from_numpy(labels).cuda()

        def t_ce():
            loss = F.cross_entropy(tl, tlab)
            loss.backward()
            return loss.item()
        row(f"softmax cross-entropy + grad N{N} K10 (loss read back)",
            timed(lambda: be.softmax_cross_entropy(dl, dlab), lsync, repeats=reps), timed(t_ce, tsync, repeats=reps))

    # the SGD update over LeNet-5's parameters (momentum 0.9)
    model = lenet_lamina().to("cuda")
    params = model.parameters()
    for p_ in params:
        p_.grad = be.asarray(np.ones(p_.shape, np.float32))
    lopt = optim.SGD(params, lr=0.01, momentum=0.9)
    tmodel = lenet_torch(torch).cuda()
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.01, momentum=0.9)
    for tp in tmodel.parameters():
        tp.grad = torch.ones_like(tp)
    row("SGD step, LeNet-5's 10 tensors (momentum)", timed(lopt.step, lsync, repeats=reps),
        timed(topt.step, tsync, repeats=reps))

    # LeNet-5 training, images/s
    X = rng.standard_normal((4096, 1, 28, 28)).astype(np.float32)
    Y = rng.integers(0, 10, 4096)
    train = []
    for N in (64, 256):
        steps = 20 if args.quick else 60
        lamina.seed(0)
        model = lenet_lamina().to("cuda")
        model.compile(optim.SGD(model.parameters(), lr=0.01, momentum=0.9), "cross_entropy")
        xs = [be.asarray(X[i * N % 4096:(i * N % 4096) + N]) for i in range(4)]
        ys = [Y[i * N % 4096:(i * N % 4096) + N] for i in range(4)]

        def l_steps():
            for s in range(steps):
                model.train_step(xs[s % 4], ys[s % 4])
        t_l = timed(l_steps, lsync, warmup=1, repeats=3)

        tm = lenet_torch(torch).cuda()
        to = torch.optim.SGD(tm.parameters(), lr=0.01, momentum=0.9)
        txs = [torch.from_numpy(X[i * N % 4096:(i * N % 4096) + N]).cuda() for i in range(4)]
        tys = [torch.from_numpy(Y[i * N % 4096:(i * N % 4096) + N]).cuda() for i in range(4)]

        def t_step(xb, yb):
            to.zero_grad(set_to_none=False)
            loss = F.cross_entropy(tm(xb), yb)
            loss.backward()
            to.step()
            return loss

        def t_eager():
            for s in range(steps):
                t_step(txs[s % 4], tys[s % 4]).item()  # the loss read every step, as lamina's fit does
        t_e = timed(t_eager, tsync, warmup=1, repeats=3)

        # CUDA graph capture of the whole step (static input buffers), as in PyTorch's docs
        sx, sy = txs[0].clone(), tys[0].clone()
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                t_step(sx, sy)
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        to.zero_grad(set_to_none=False)
        with torch.cuda.graph(g):
            static_loss = t_step(sx, sy)

        def t_graph():
            for st in range(steps):
                sx.copy_(txs[st % 4])
                sy.copy_(tys[st % 4])
                g.replay()
                static_loss.item()
        t_g = timed(t_graph, tsync, warmup=1, repeats=3)
        ips = lambda t: steps * N / t  # noqa: E731
        train.append((N, ips(t_l), ips(t_e), ips(t_g)))
        print(f"LeNet-5 training batch {N}: lamina {ips(t_l):10.0f} img/s  torch eager {ips(t_e):10.0f}  "
              f"torch graph {ips(t_g):10.0f}  (lamina/eager {t_e / t_l:.2f}x, lamina/graph {t_g / t_l:.2f}x)",
              flush=True)

    lines = ["| kernel | lamina ms | torch ms | torch/lamina |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {n} | {a * 1e3:.3f} | {b * 1e3:.3f} | {b / a:.2f}x |" for n, a, b in rows]
    lines += ["", "| LeNet-5 training | lamina img/s | torch eager img/s | torch graph img/s | vs eager | vs graph |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| batch {n} | {a:.0f} | {b:.0f} | {c:.0f} | {a / b:.2f}x | {a / c:.2f}x |" for n, a, b, c in train]
    table = "\n".join(lines)
    print()
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
