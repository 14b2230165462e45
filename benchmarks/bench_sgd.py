"""sgd_step with momentum and weight decay: lamina (one pass) vs the NumPy reference (one pass
per operation), with the bytes one pass must move (read param, grad, velocity; write param,
velocity) against the copy bandwidth.

    python benchmarks/bench_sgd.py                       # the comparison table
    pytest benchmarks/bench_sgd.py [--benchmark-disable] # pytest-benchmark
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
KW = dict(momentum=0.9, weight_decay=1e-4, nesterov=True)


def _data(shape=SHAPE):
    rng = np.random.default_rng(0)
    return (rng.standard_normal(shape).astype(np.float32), rng.standard_normal(shape).astype(np.float32) * 1e-3,
            np.zeros(shape, np.float32))


def rows():
    p, g, v = _data()
    bytes_moved = 5 * p.nbytes
    bw = machine_bandwidth(p.nbytes)[0]
    t = compare({"lamina": lambda: ops.sgd_step(p, g, 1e-3, v, **KW),
                 "numpy": lambda: ref.sgd_step(p, g, 1e-3, v, **KW)})
    return [ratio_row("sgd_step momentum+wd+nesterov", SHAPE, t["lamina"], t["numpy"],
                      GBps=bytes_moved / t["lamina"] / 1e9, copy_GBps=bw / 1e9,
                      bandwidth_time_ratio=t["lamina"] / (bytes_moved / bw))]


@pytest.mark.parametrize("impl", ["lamina", "numpy"])
def test_sgd_step(benchmark, impl):
    p, g, v = _data()
    benchmark.group = f"sgd_step {SHAPE}"
    benchmark((ops if impl == "lamina" else ref).sgd_step, p, g, 1e-3, v, **KW)


if __name__ == "__main__":
    print(lamina.backend_info())
    print_rows(rows())
