"""dropout forward + backward: lamina vs the NumPy reference (the same splitmix64 mask, from
vectorised uint64 NumPy), with the bytes moved (x, y, mask; grad_y, mask, grad_x) against
the copy bandwidth.

    python benchmarks/bench_dropout.py                       # the comparison table
    pytest benchmarks/bench_dropout.py [--benchmark-disable] # pytest-benchmark
"""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lamina  # noqa: E402
from lamina import ops, reference as ref  # noqa: E402
from timing import compare, machine_bandwidth, print_rows, ratio_row  # noqa: E402

SHAPE = (256, 4096)
P = 0.5


def fwd_bwd(mod, x, g):
    y, mask = mod.dropout(x, P, 1234)
    return mod.dropout_backward(g, mask, P)


def _data(shape=SHAPE):
    rng = np.random.default_rng(0)
    return rng.standard_normal(shape).astype(np.float32), rng.standard_normal(shape).astype(np.float32)


def rows():
    x, g = _data()
    bytes_moved = 6 * x.nbytes
    bw = machine_bandwidth(x.nbytes)[0]
    t = compare({"lamina": lambda: fwd_bwd(ops, x, g), "numpy": lambda: fwd_bwd(ref, x, g)}, repeats=5)
    return [ratio_row(f"dropout fwd+bwd p={P}", SHAPE, t["lamina"], t["numpy"],
                      GBps=bytes_moved / t["lamina"] / 1e9, copy_GBps=bw / 1e9,
                      bandwidth_time_ratio=t["lamina"] / (bytes_moved / bw))]


@pytest.mark.parametrize("impl", ["lamina", "numpy"])
def test_dropout_fwd_bwd(benchmark, impl):
    x, g = _data()
    benchmark.group = f"dropout fwd+bwd {SHAPE}"
    benchmark(fwd_bwd, ops if impl == "lamina" else ref, x, g)


if __name__ == "__main__":
    print(lamina.backend_info())
    print_rows(rows())
