"""softmax / log_softmax / softmax_cross_entropy: lamina vs the NumPy reference, and the fused
cross-entropy against the memory bandwidth (it must read the logits and write the gradient:
8 bytes per element).

    python benchmarks/bench_softmax.py                       # the comparison table
    pytest benchmarks/bench_softmax.py [--benchmark-disable] # pytest-benchmark
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


def _data(shape=SHAPE):
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal(shape) * 3).astype(np.float32)
    labels = rng.integers(0, shape[1], size=shape[0])
    return logits, labels


def rows(thread_counts=(1, 2)):
    """The cross-entropy against NumPy and the bandwidth at each thread count; softmax and
    log_softmax (both axes) at the last."""
    logits, labels = _data()
    bytes_moved = 2 * logits.nbytes  # read logits, write grad (labels are 2 KiB)
    bw, bw_at_size, bw_large = machine_bandwidth(logits.nbytes)
    out = []
    for nt in thread_counts:
        with lamina_threads(nt):
            t = compare({"lamina": lambda: ops.softmax_cross_entropy(logits, labels),
                         "numpy": lambda: ref.softmax_cross_entropy(logits, labels)})
            out.append(ratio_row("softmax_cross_entropy", SHAPE, t["lamina"], t["numpy"], threads=nt,
                                 GBps=bytes_moved / t["lamina"] / 1e9, copy_GBps=bw / 1e9,
                                 copy_GBps_at_size=bw_at_size / 1e9, copy_GBps_256MiB=bw_large / 1e9,
                                 bandwidth_time_ratio=t["lamina"] / (bytes_moved / bw)))
    with lamina_threads(thread_counts[-1]):
        for name in ("softmax", "log_softmax"):
            for axis in (-1, 0):
                t = compare({"lamina": lambda: getattr(ops, name)(logits, axis=axis),
                             "numpy": lambda: getattr(ref, name)(logits, axis=axis)})
                out.append(ratio_row(f"{name} axis={axis}", SHAPE, t["lamina"], t["numpy"],
                                     threads=thread_counts[-1]))
    return out


@pytest.mark.parametrize("impl", ["lamina", "numpy"])
def test_softmax_cross_entropy(benchmark, impl):
    logits, labels = _data()
    benchmark.group = f"softmax_cross_entropy {SHAPE}"
    benchmark((ops if impl == "lamina" else ref).softmax_cross_entropy, logits, labels)


@pytest.mark.parametrize("impl", ["lamina", "numpy"])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax(benchmark, name, impl):
    logits, _ = _data()
    benchmark.group = f"{name} {SHAPE}"
    benchmark(getattr(ops if impl == "lamina" else ref, name), logits)


if __name__ == "__main__":
    print(lamina.backend_info())
    print_rows(rows())
