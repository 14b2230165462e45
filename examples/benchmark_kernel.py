"""Benchmarking a kernel against NumPy, the way lamina's own tables are measured: first check
that both compute the same thing, then time them in alternating blocks of calls with a pause
between blocks (lamina.bench.time_interleaved), so that neither library's idle threads disturb
the other, and report the medians and their ratio.

    python examples/benchmark_kernel.py
    LAMINA_FAST=1 python examples/benchmark_kernel.py     # fewer, shorter blocks

Prints, for a few shapes of a Dense layer's forward with ReLU: lamina's fused linear against
np.maximum(x @ w.T + b, 0), in microseconds and GFLOP/s, with the date, CPU and thread count
that a published number needs.
"""
import datetime
import os
import platform

import numpy as np

import lamina
from lamina.bench import time_interleaved

FAST = os.environ.get("LAMINA_FAST") == "1"
rng = np.random.default_rng(0)
info = lamina.backend_info()
print(f"{datetime.date.today()}, {platform.processor() or platform.machine()}, lamina path {info['isa']}, "
      f"{lamina.get_num_threads()} thread(s), numpy {np.__version__}")
print(f"{'shape (batch x in -> out)':28s} {'lamina us':>10s} {'numpy us':>10s} {'GFLOP/s':>8s} {'ratio':>6s}")
for n, k, m in [(64, 784, 100), (64, 800, 500), (256, 1024, 1024)]:
    x = rng.standard_normal((n, k), dtype=np.float32)
    w = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal(m, dtype=np.float32)
    out = np.empty((n, m), np.float32)
    ours = lambda: lamina.ops.linear(x, w, b, activation="relu", out=out)      # noqa: E731
    theirs = lambda: np.maximum(x @ w.T + b, 0)                                  # noqa: E731
    np.testing.assert_allclose(ours(), theirs(), rtol=1e-4, atol=1e-3)          # the same result first
    t = time_interleaved({"lamina": ours, "numpy": theirs}, repeats=3 if FAST else 7,
                         block_s=0.01 if FAST else 0.05, pause_s=0.02 if FAST else 0.25)
    gflops = 2 * n * k * m / t["lamina"] / 1e9
    print(f"{f'{n} x {k} -> {m}':28s} {t['lamina'] * 1e6:10.1f} {t['numpy'] * 1e6:10.1f} {gflops:8.1f} "
          f"{t['numpy'] / t['lamina']:5.2f}x")
