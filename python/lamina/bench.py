"""Kernel benchmarks against NumPy (and PyTorch where present): the `lamina bench` table.

How we time on a small shared machine (2 cores): each implementation runs in *blocks* of
back-to-back calls (about ``block_s`` seconds), blocks of the competitors alternate, and a
pause separates blocks so the idle worker threads of the library that just ran (OpenBLAS
spins for up to ~0.1 s, libgomp for well under a millisecond) have gone to sleep before the
other one starts. Each implementation's time is the median over ``repeats`` blocks. Ratios
are baseline time / lamina time from the same run (> 1 means lamina is faster).
"""
from __future__ import annotations

import argparse
import ctypes
import glob
import os
import statistics
import sys
import time
from dataclasses import dataclass, field

import numpy as np

import lamina

# ------------------------------------------------------------------------------------------
# timing


def time_interleaved(fns: dict, repeats: int = 7, block_s: float = 0.05, pause_s: float = 0.25) -> dict:
    """Median seconds per call of each callable in ``fns``, timed in alternating blocks."""
    calls = {}
    for name, f in fns.items():  # warm up and size a block
        f()
        t0 = time.perf_counter()
        f()
        dt = max(time.perf_counter() - t0, 1e-7)
        calls[name] = max(1, int(block_s / dt))
    samples = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            if pause_s:
                time.sleep(pause_s)
            f, n = fns[name], calls[name]
            t0 = time.perf_counter()
            for _ in range(n):
                f()
            samples[name].append((time.perf_counter() - t0) / n)
    return {name: statistics.median(v) for name, v in samples.items()}


# ------------------------------------------------------------------------------------------
# thread control for the baselines


def _openblas_lib():
    try:
        import numpy  # noqa: F401

        pattern = os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs", "*openblas*")
        for path in glob.glob(pattern):
            return ctypes.CDLL(path)
    except OSError:
        return None
    return None


_OPENBLAS = None


def set_numpy_threads(n: int) -> bool:
    """Set OpenBLAS's thread count for numpy.matmul at run time; False if not possible."""
    global _OPENBLAS
    if _OPENBLAS is None:
        _OPENBLAS = _openblas_lib() or False
    if not _OPENBLAS:
        return False
    for sym in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                "openblas_set_num_threads64_", "openblas_set_num_threads"):
        fn = getattr(_OPENBLAS, sym, None)
        if fn is not None:
            fn(ctypes.c_int(n))
            return True
    return False


class threads:
    """Context manager: lamina, numpy (OpenBLAS) and torch (if imported) all on ``n`` threads."""

    def __init__(self, n: int, torch=None):
        self.n, self.torch = n, torch

    def __enter__(self):
        self.prev = lamina.get_num_threads()
        lamina.set_num_threads(self.n)
        set_numpy_threads(self.n)
        if self.torch is not None:
            self.torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        lamina.set_num_threads(self.prev)
        set_numpy_threads(self.prev)


# ------------------------------------------------------------------------------------------
# correctness before speed


class ResultMismatch(AssertionError):
    """A benchmarked kernel's result differs from lamina.reference's (``lamina bench`` then
    exits non-zero: a fast wrong kernel is a failure, not a row of the table)."""


def check_matmul(got, a, b, trans_b=False, bias=None, relu=False, where="matmul"):
    """Raises ResultMismatch unless ``got`` is op(a) @ op(b) (+ bias, then ReLU) as
    lamina.reference computes it in float64, within float32's GEMM error bound
    8 u sqrt(K) sqrt(|a|^2 @ |b|^2) per element (u = 2**-24)."""
    from . import reference

    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    want = reference.matmul(a64, b64, trans_b=trans_b)
    mag = reference.matmul(a64 * a64, b64 * b64, trans_b=trans_b)
    if bias is not None:
        want = want + bias.astype(np.float64)
        mag = mag + bias.astype(np.float64) ** 2
    if relu:
        want = np.maximum(want, 0.0)
    got = np.asarray(got)
    if got.shape != want.shape:
        raise ResultMismatch(f"{where}: shape {got.shape}, expected {want.shape}")
    k = a.shape[1]
    bound = 8 * 2.0**-24 * np.sqrt(k + 1) * np.sqrt(mag) + np.finfo(np.float32).tiny
    err = np.abs(got.astype(np.float64) - want)
    bad = ~(err <= bound)  # NaN counts as bad
    if bad.any():
        i = np.unravel_index(int(np.argmax(np.where(bad, np.inf, 0.0))), bad.shape)
        raise ResultMismatch(f"{where}: {int(bad.sum())} of {bad.size} elements off the reference, "
                             f"e.g. at {tuple(int(j) for j in i)}: {got[i]!r} vs {want[i]!r} (bound {bound[i]:.3g})")


# ------------------------------------------------------------------------------------------
# tables


@dataclass
class Row:
    kernel: str
    shape: str
    threads: int
    lamina_s: float
    baseline: str
    baseline_s: float
    unit: str = "GFLOP/s"
    work: float = 0.0  # flops (or bytes) per call, for the throughput columns
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.baseline_s / self.lamina_s

    def rate(self, seconds: float) -> float:
        return self.work / seconds / 1e9 if self.work else float("nan")


SQUARE = (256, 512, 1024, 2048)
DL_SHAPES = ((6, 25, 36864), (16, 150, 4096), (64, 576, 16384), (128, 1152, 4096),
             (64, 800, 500), (64, 500, 10))


def gemm_rows(thread_counts=(1, 2), repeats=7, pause_s=0.25, quick=False, rng=None):
    """lamina.ops.matmul / linear vs numpy at the issue's shapes; each lamina result is first
    checked once against lamina.reference (check_matmul: ResultMismatch when it is wrong)."""
    rng = rng or np.random.default_rng(0)
    cases = [(n, n, n, False) for n in SQUARE]
    cases += [(m, k, n, tb) for (m, k, n) in DL_SHAPES for tb in (False, True)]
    if quick:
        cases = [(64, 64, 64, False), (6, 25, 300, True), (16, 20, 10, False)]
    rows = []
    for nt in thread_counts:
        with threads(nt):
            for m, k, n, tb in cases:
                a = rng.standard_normal((m, k), dtype=np.float32)
                b = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
                if tb:
                    fns = {"lamina": lambda: lamina.ops.matmul(a, b, trans_b=True), "numpy": lambda: a @ b.T}
                else:
                    fns = {"lamina": lambda: lamina.ops.matmul(a, b), "numpy": lambda: a @ b}
                check_matmul(fns["lamina"](), a, b, trans_b=tb, where=f"matmul {m}x{k}x{n}, {nt} thread(s)")
                t = time_interleaved(fns, repeats=repeats, pause_s=pause_s)
                rows.append(Row("matmul" + (" trans_b" if tb else ""), f"{m}x{k}x{n}", nt,
                                t["lamina"], "numpy", t["numpy"], work=2.0 * m * n * k))
            # linear + ReLU fused in the write-back vs numpy's three passes
            for bsz, fin, fout in ((64, 800, 500), (256, 1024, 1024)) if not quick else ((8, 16, 12),):
                x = rng.standard_normal((bsz, fin), dtype=np.float32)
                w = rng.standard_normal((fout, fin), dtype=np.float32)
                bias = rng.standard_normal(fout, dtype=np.float32)
                fns = {"lamina": lambda: lamina.ops.linear(x, w, bias, activation="relu"),
                       "numpy": lambda: np.maximum(x @ w.T + bias, 0)}
                check_matmul(fns["lamina"](), x, w, trans_b=True, bias=bias, relu=True,
                             where=f"linear+relu {bsz}x{fin}->{fout}, {nt} thread(s)")
                t = time_interleaved(fns, repeats=repeats, pause_s=pause_s)
                rows.append(Row("linear+relu", f"{bsz}x{fin}->{fout}", nt, t["lamina"], "numpy",
                                t["numpy"], work=2.0 * bsz * fin * fout))
    return rows


TABLES = {"gemm": gemm_rows}


def format_rows(rows) -> str:
    head = f"| kernel | shape (M x K x N) | threads | lamina GFLOP/s | baseline | baseline GFLOP/s | ratio |"
    lines = [head, "|---|---|---:|---:|---|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.kernel} | {r.shape} | {r.threads} | {r.rate(r.lamina_s):.1f} | {r.baseline} | "
                     f"{r.rate(r.baseline_s):.1f} | {r.ratio:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="lamina bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--kernels", default=",".join(TABLES), help="comma-separated: " + ", ".join(TABLES))
    p.add_argument("--threads", default="1,2", help="thread counts, e.g. 1,2")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--pause", type=float, default=0.25, help="seconds between timed blocks")
    p.add_argument("--quick", action="store_true", help="tiny shapes, one repeat (a smoke test)")
    args = p.parse_args(argv)
    info = lamina.backend_info()
    print(f"lamina {lamina.__version__}  isa={info['isa']}  openmp={info['openmp']}  "
          f"cpu_count={os.cpu_count()}  numpy {np.__version__}")
    nts = tuple(int(t) for t in args.threads.split(","))
    repeats, pause = (1, 0.0) if args.quick else (args.repeats, args.pause)
    for name in args.kernels.split(","):
        if name not in TABLES:
            raise SystemExit(f"lamina bench: unknown kernel table {name!r}; choose from {', '.join(TABLES)}")
        try:
            rows = TABLES[name](thread_counts=nts, repeats=repeats, pause_s=pause, quick=args.quick)
        except ResultMismatch as e:
            print(f"lamina bench: wrong result, not timed: {e}", file=sys.stderr)
            return 1
        print(format_rows(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
