"""mse and binary_cross_entropy (loss + gradient): lamina vs the NumPy reference, with the
bytes each must move (read the two inputs, write the gradient) against the copy bandwidth.

    python benchmarks/bench_loss.py                       # the comparison table
    pytest benchmarks/bench_loss.py [--benchmark-disable] # pytest-benchmark
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
KINDS = ["mse", "binary_cross_entropy"]


def _data(shape=SHAPE):
    rng = np.random.default_rng(0)
    return (rng.uniform(0, 1, shape).astype(np.float32), rng.uniform(0, 1, shape).astype(np.float32))


def rows():
    a, y = _data()
    bytes_moved = 3 * a.nbytes
    bw = machine_bandwidth(a.nbytes)[0]
    out = []
    for kind in KINDS:
        t = compare({"lamina": lambda: getattr(ops, kind)(a, y), "numpy": lambda: getattr(ref, kind)(a, y)})
        out.append(ratio_row(kind, SHAPE, t["lamina"], t["numpy"], GBps=bytes_moved / t["lamina"] / 1e9,
                             copy_GBps=bw / 1e9, bandwidth_time_ratio=t["lamina"] / (bytes_moved / bw)))
    return out


@pytest.mark.parametrize("impl", ["lamina", "numpy"])
@pytest.mark.parametrize("kind", KINDS)
def test_loss(benchmark, kind, impl):
    a, y = _data()
    benchmark.group = f"{kind} {SHAPE}"
    benchmark(getattr(ops if impl == "lamina" else ref, kind), a, y)


if __name__ == "__main__":
    print(lamina.backend_info())
    print_rows(rows())
