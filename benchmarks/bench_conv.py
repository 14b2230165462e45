"""conv2d forward and forward + backward: lamina vs the NumPy reference (im2col by sliding
windows + matmul) and, where installed, PyTorch's CPU convolution, at the issue's shapes.

    python benchmarks/bench_conv.py                        # the comparison table (2 threads)
    python benchmarks/bench_conv.py --threads 1,2
    python benchmarks/bench_conv.py --winograd             # the 3x3 table: auto vs im2col + GEMM vs torch
    python benchmarks/bench_conv.py --winograd --cpu-time  # the same, 1 thread, by CPU time
    pytest benchmarks/bench_conv.py [--benchmark-disable]  # pytest-benchmark, one group per shape
"""
import argparse
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lamina  # noqa: E402
from lamina import ops, reference as ref  # noqa: E402
from lamina.bench import threads as thread_count  # noqa: E402
from timing import print_rows, ratio_row, with_conv_algo  # noqa: E402

# (N, C, H=W, O, k, padding): LeNet-5's two convolutions and two small-VGG layers.
CASES = [
    (64, 1, 28, 6, 5, 2),
    (64, 6, 14, 16, 5, 0),
    (64, 3, 32, 32, 3, 1),
    (64, 32, 16, 64, 3, 1),
]


def _label(case):
    n, c, h, o, k, p = case
    return f"N{n} C{c} {h}x{h} -> O{o} k{k} pad{p}"


def _data(case):
    n, c, h, o, k, p = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, h)).astype(np.float32)
    w = (rng.standard_normal((o, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    gy = rng.standard_normal(ops.conv2d(x, w, b, padding=p).shape).astype(np.float32)
    return x, w, b, gy, p


def _flops(case):
    n, c, h, o, k, p = case
    oh = h + 2 * p - k + 1
    return 2.0 * n * o * oh * oh * c * k * k  # one of the three products


def fwd(mod, x, w, b, gy, p):
    return mod.conv2d(x, w, b, padding=p)


def fwd_bwd(mod, x, w, b, gy, p):
    mod.conv2d(x, w, b, padding=p)
    return mod.conv2d_backward(x, w, gy, padding=p)


def _torch_fns(torch, x, w, b, gy, p):
    F = torch.nn.functional
    tx, tw, tb = (torch.from_numpy(a).requires_grad_(True) for a in (x, w, b))
    tgy = torch.from_numpy(gy)

    def t_fwd():
        with torch.no_grad():
            return F.conv2d(tx, tw, tb, padding=p)

    def t_fwd_bwd():  # grad_x, grad_w and grad_b, as lamina and the reference compute
        y = F.conv2d(tx, tw, tb, padding=p)
        return torch.autograd.grad(y, (tx, tw, tb), tgy)

    return t_fwd, t_fwd_bwd


def _machine_busy():
    """(busy jiffies of all CPUs, this process's CPU seconds) now; Linux only, else None."""
    try:
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:]]
    except OSError:
        return None
    busy = sum(v) - v[3] - v[4]  # all but idle and iowait
    t = os.times()
    return busy / os.sysconf("SC_CLK_TCK"), t.user + t.system


def compare_quiet(fns, repeats=9, min_block_s=0.1, pause_s=0.25, max_other=0.05, max_tries=20):
    """timing.compare, for a shared machine: blocks of calls alternate between the
    implementations and the median is taken; the pause before each block lets the worker
    threads of the library that ran last (OpenBLAS, PyTorch's own OpenMP) stop spinning; and a
    block during which other processes used more than `max_other` of the machine's CPU time
    is discarded and run again (up to `max_tries` times). /proc/stat counts in clock ticks
    (10 ms), so two ticks of slack are allowed on top of `max_other`.
    Returns ({name: median seconds per call}, number of blocks discarded)."""
    import time

    ncpu = os.cpu_count() or 1
    tick = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01
    calls = {}
    for name, f in fns.items():
        f()
        t0 = time.perf_counter()
        f()
        calls[name] = max(1, int(min_block_s / max(time.perf_counter() - t0, 1e-7)))
    times = {name: [] for name in fns}
    dropped = 0
    for r in range(repeats):
        for name in (list(fns) if r % 2 == 0 else list(reversed(list(fns)))):
            for attempt in range(max_tries):
                time.sleep(pause_s)
                b0 = _machine_busy()
                t0 = time.perf_counter()
                for _ in range(calls[name]):
                    fns[name]()
                wall = time.perf_counter() - t0
                b1 = _machine_busy()
                other = 0.0 if b0 is None else (b1[0] - b0[0]) - (b1[1] - b0[1])
                if other <= max_other * ncpu * wall + 2 * tick or attempt == max_tries - 1:
                    times[name].append(wall / calls[name])
                    break
                dropped += 1
                time.sleep(0.2)
    return {name: float(np.median(v)) for name, v in times.items()}, dropped


def rows(thread_counts=(2,), repeats=9, cases=CASES):
    """Rows for the ratio table: per shape and thread count, forward and forward + backward,
    lamina vs numpy and lamina vs torch (when importable). Each pair is timed in its own
    interleaved comparison (so the reference's large temporaries do not disturb torch's
    allocator), all in one run."""
    try:
        import torch
    except ImportError:
        torch = None
    out = []
    for nt in thread_counts:
        with thread_count(nt, torch):
            for case in cases:
                data = _data(case)
                n, c, h, o, k, p = case
                for kind, fn in (("conv2d fwd", fwd), ("conv2d fwd+bwd", fwd_bwd)):
                    baselines = {"numpy": lambda: fn(ref, *data)}
                    if torch is not None:
                        baselines["torch"] = _torch_fns(torch, *data)[0 if kind == "conv2d fwd" else 1]
                    gflop = _flops(case) * (1 if kind == "conv2d fwd" else 3) / 1e9
                    for base, g in baselines.items():
                        t, dropped = compare_quiet({"lamina": lambda: fn(ops, *data), base: g},
                                                   repeats=repeats)
                        out.append(ratio_row(kind, (n, c, h, h), t["lamina"], t[base], baseline=base,
                                             threads=nt, conv=f"O={o} k={k} pad={p}",
                                             lamina_gflops=gflop / t["lamina"],
                                             base_gflops=gflop / t[base], blocks_dropped=dropped))
    return out


# (N, C, H=W, O, k, padding): the 3x3 layers Winograd is for (fwd+bwd targets 1.6x and 1.5x torch).
WINOGRAD_CASES = [
    (64, 32, 16, 64, 3, 1),
    (64, 64, 8, 128, 3, 1),
]


def winograd_rows(threads=2, repeats=9, cases=WINOGRAD_CASES):
    """conv2d fwd and fwd+bwd of 3x3 layers: lamina as it chooses (Winograd where the rule says),
    lamina forced to im2col + GEMM, and torch, the three interleaved in one comparison per row."""
    import torch
    from lamina import _native
    out = []
    with thread_count(threads, torch):
        for case in cases:
            data = _data(case)
            n, c, h, o, k, p = case
            algos = _native._conv_algorithms(data[0], data[1], padding=p)
            for kind, fn, ti in (("conv2d fwd", fwd, 0), ("conv2d fwd+bwd", fwd_bwd, 1)):
                fns = {"lamina": lambda: fn(ops, *data), "lamina gemm": with_conv_algo(lambda: fn(ops, *data), "gemm"),
                       "torch": _torch_fns(torch, *data)[ti]}
                # (3 tries per block: on a machine others keep busy, waiting for a quiet block
                # would take minutes per row; the dropped count says how often it tried)
                t, dropped = compare_quiet(fns, repeats=repeats, max_tries=3)
                out.append({"kernel": kind, "shape": (n, c, h, h), "conv": f"O={o} k={k} pad={p}", "threads": threads,
                            "algorithms": algos, "lamina_ms": t["lamina"] * 1e3, "gemm_ms": t["lamina gemm"] * 1e3,
                            "torch_ms": t["torch"] * 1e3, "ratio": t["torch"] / t["lamina"],
                            "ratio_gemm": t["torch"] / t["lamina gemm"], "blocks_dropped": dropped})
    return out


def winograd_cpu_rows(repeats=15, cases=WINOGRAD_CASES):
    """conv2d fwd+bwd of 3x3 layers at 1 thread, timed by this process's CPU time (best of
    `repeats`): lamina as it chooses, lamina forced to im2col + GEMM, torch. CPU time does not
    count the time other processes take the core away, so on a shared machine these ratios are
    steadier than wall-clock ones (but only one thread can be measured this way)."""
    import time

    import torch
    from lamina import _native

    def best(f):
        f()
        t = float("inf")
        for _ in range(repeats):
            t0 = time.process_time()
            f()
            t = min(t, time.process_time() - t0)
        return t

    out = []
    with thread_count(1, torch):
        for case in cases:
            data = _data(case)
            n, c, h, o, k, p = case
            lam, tor = (lambda: fwd_bwd(ops, *data)), _torch_fns(torch, *data)[1]
            t = {"lamina": best(lam), "lamina gemm": best(with_conv_algo(lam, "gemm")), "torch": best(tor)}
            out.append({"kernel": "conv2d fwd+bwd (1 thread, CPU time)", "shape": (n, c, h, h),
                        "conv": f"O={o} k={k} pad={p}", "threads": 1,
                        "algorithms": _native._conv_algorithms(data[0], data[1], padding=p),
                        "lamina_ms": t["lamina"] * 1e3, "gemm_ms": t["lamina gemm"] * 1e3, "torch_ms": t["torch"] * 1e3,
                        "ratio": t["torch"] / t["lamina"], "ratio_gemm": t["torch"] / t["lamina gemm"]})
    return out


def winograd_markdown(rs):
    lines = ["| kernel | x shape | conv | threads | algorithm (fwd / dx / dw) | lamina ms | lamina gemm ms | torch ms "
             "| ratio | ratio gemm |", "|---|---|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in rs:
        a = r["algorithms"]
        lines.append(f"| {r['kernel']} | {r['shape']} | {r['conv']} | {r['threads']} | {a['forward']} / {a['grad_x']} / "
                     f"{a['grad_w']} | {r['lamina_ms']:.2f} | {r['gemm_ms']:.2f} | {r['torch_ms']:.2f} | "
                     f"{r['ratio']:.2f} | {r['ratio_gemm']:.2f} |")
    return "\n".join(lines)


def markdown(rs):
    lines = ["| kernel | x shape | conv | threads | lamina ms | baseline | baseline ms | ratio |",
             "|---|---|---|---:|---:|---|---:|---:|"]
    for r in rs:
        lines.append(f"| {r['kernel']} | {r['shape']} | {r['conv']} | {r['threads']} | "
                     f"{r['lamina_ms']:.3f} | {r['baseline']} | {r['baseline_ms']:.3f} | {r['ratio']:.2f} |")
    return "\n".join(lines)


@pytest.mark.parametrize("impl", ["lamina", "numpy"])
@pytest.mark.parametrize("case", CASES, ids=_label)
def test_conv2d_fwd(benchmark, case, impl):
    data = _data(case)
    benchmark.group = "conv2d fwd " + _label(case)
    benchmark.extra_info["gflop"] = _flops(case) / 1e9
    y = benchmark(fwd, ops if impl == "lamina" else ref, *data)
    assert y.shape == data[3].shape


@pytest.mark.parametrize("impl", ["lamina", "numpy"])
@pytest.mark.parametrize("case", CASES, ids=_label)
def test_conv2d_fwd_bwd(benchmark, case, impl):
    data = _data(case)
    benchmark.group = "conv2d fwd+bwd " + _label(case)
    benchmark.extra_info["gflop"] = 3 * _flops(case) / 1e9
    gx, gw, gb = benchmark(fwd_bwd, ops if impl == "lamina" else ref, *data)
    assert gx.shape == data[0].shape and gw.shape == data[1].shape


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", default="2", help="thread counts, e.g. 1,2")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    ap.add_argument("--winograd", action="store_true",
                    help="the 3x3 table: lamina (auto), lamina forced to im2col + GEMM, torch (first thread count)")
    ap.add_argument("--cpu-time", action="store_true",
                    help="with --winograd: fwd+bwd at 1 thread by CPU time (steadier on a shared machine)")
    args = ap.parse_args()
    if args.winograd:
        if args.cpu_time:
            print(winograd_markdown(winograd_cpu_rows()))
        else:
            print(winograd_markdown(winograd_rows(int(args.threads.split(",")[0]), repeats=args.repeats)))
        sys.exit(0)
    print(lamina.backend_info())
    rs = rows(tuple(int(t) for t in args.threads.split(",")), repeats=args.repeats)
    print(markdown(rs) if args.markdown else "")
    print_rows(rs)
