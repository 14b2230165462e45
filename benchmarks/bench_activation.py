"""Activations forward + backward: lamina vs the NumPy reference, and relu against the memory
bandwidth (it moves 20 bytes per element: forward reads x, writes y; backward reads grad_y and
x, writes grad_x).

    python benchmarks/bench_activation.py                       # the comparison table
    pytest benchmarks/bench_activation.py [--benchmark-disable] # pytest-benchmark
"""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lamina  # noqa: E402
from lamina import ops, reference as ref  # noqa: E402
from timing import compare, lamina_threads, machine_bandwidth, print_rows, ratio_row  # noqa: E402

SHAPE = (256, 4096)
KINDS = ["relu", "leaky_relu", "sigmoid", "tanh"]


def _saved_is_x(kind):
    return kind in ("relu", "leaky_relu")


def fwd_bwd(mod, kind, x, g):
    """One training step's worth of the activation: y = f(x), grad_x = f'(.) * g."""
    y = getattr(mod, kind)(x)
    return getattr(mod, kind + "_backward")(g, x if _saved_is_x(kind) else y)


def _data(shape=SHAPE):
    rng = np.random.default_rng(0)
    return (rng.standard_normal(shape).astype(np.float32), rng.standard_normal(shape).astype(np.float32))


def rows(thread_counts=(1, 2)):
    """relu against NumPy and the bandwidth at each thread count; the others at the last."""
    x, g = _data()
    bytes_moved = 5 * x.nbytes  # x, y (fwd) + grad_y, x, grad_x (bwd)
    bw, bw_at_size, bw_large = machine_bandwidth(x.nbytes)
    out = []
    for nt in thread_counts:
        with lamina_threads(nt):
            for kind in KINDS if nt == thread_counts[-1] else ["relu"]:
                t = compare({"lamina": lambda: fwd_bwd(ops, kind, x, g), "numpy": lambda: fwd_bwd(ref, kind, x, g)})
                extra = {}
                if kind == "relu":
                    extra = dict(GBps=bytes_moved / t["lamina"] / 1e9, copy_GBps=bw / 1e9,
                                 copy_GBps_at_size=bw_at_size / 1e9, copy_GBps_256MiB=bw_large / 1e9,
                                 bandwidth_time_ratio=t["lamina"] / (bytes_moved / bw))
                out.append(ratio_row(f"{kind} fwd+bwd", SHAPE, t["lamina"], t["numpy"], threads=nt, **extra))
    return out


@pytest.mark.parametrize("impl", ["lamina", "numpy"])
@pytest.mark.parametrize("kind", KINDS)
def test_activation_fwd_bwd(benchmark, kind, impl):
    x, g = _data()
    benchmark.group = f"{kind} fwd+bwd {SHAPE}"
    benchmark(fwd_bwd, ops if impl == "lamina" else ref, kind, x, g)


if __name__ == "__main__":
    print(lamina.backend_info())
    print_rows(rows())
