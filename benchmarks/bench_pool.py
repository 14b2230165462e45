"""max_pool2d / avg_pool2d forward + backward: lamina vs the NumPy reference (sliding windows,
argmax, np.add.at).

    python benchmarks/bench_pool.py                       # the comparison table
    pytest benchmarks/bench_pool.py [--benchmark-disable] # pytest-benchmark
"""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lamina  # noqa: E402
from lamina import ops, reference as ref  # noqa: E402
from timing import compare, lamina_threads, print_rows, ratio_row  # noqa: E402

CASES = [  # (x shape, kernel_size, stride, padding)
    ((64, 16, 24, 24), 2, None, 0),  # the target shape (LeNet-like, after a 5x5 conv of 28x28)
    ((64, 6, 28, 28), 2, None, 0),
    ((32, 64, 16, 16), 3, 2, 1),
]


def max_fwd_bwd(mod, x, g, k, s, p):
    y, idx = mod.max_pool2d(x, k, s, p)
    return mod.max_pool2d_backward(g, idx, x.shape)


def avg_fwd_bwd(mod, x, g, k, s, p):
    mod.avg_pool2d(x, k, s, p)
    return mod.avg_pool2d_backward(g, x.shape, k, s, p)


def _data(case):
    shape, k, s, p = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    y = ops.avg_pool2d(x, k, s, p)
    return x, rng.standard_normal(y.shape).astype(np.float32)


def _label(case):
    shape, k, s, p = case
    return f"{shape} k={k} s={s or k} p={p}"


def rows(thread_counts=(1, 2)):
    """max pooling at the target shape at each thread count; every case at the last."""
    out = []
    for nt in thread_counts:
        with lamina_threads(nt):
            for i, case in enumerate(CASES if nt == thread_counts[-1] else CASES[:1]):
                x, g = _data(case)
                args = case[1:]
                fns = (("max_pool2d fwd+bwd", max_fwd_bwd), ("avg_pool2d fwd+bwd", avg_fwd_bwd))
                for name, fn in fns if nt == thread_counts[-1] else fns[:1]:
                    t = compare({"lamina": lambda: fn(ops, x, g, *args), "numpy": lambda: fn(ref, x, g, *args)})
                    out.append(ratio_row(name, case[0], t["lamina"], t["numpy"], threads=nt,
                                         window=f"k={args[0]} s={args[1] or args[0]} p={args[2]}"))
    return out


@pytest.mark.parametrize("impl", ["lamina", "numpy"])
@pytest.mark.parametrize("case", CASES, ids=_label)
def test_max_pool2d_fwd_bwd(benchmark, case, impl):
    x, g = _data(case)
    benchmark.group = "max_pool2d fwd+bwd " + _label(case)
    benchmark(max_fwd_bwd, ops if impl == "lamina" else ref, x, g, *case[1:])


@pytest.mark.parametrize("impl", ["lamina", "numpy"])
@pytest.mark.parametrize("case", CASES, ids=_label)
def test_avg_pool2d_fwd_bwd(benchmark, case, impl):
    x, g = _data(case)
    benchmark.group = "avg_pool2d fwd+bwd " + _label(case)
    benchmark(avg_fwd_bwd, ops if impl == "lamina" else ref, x, g, *case[1:])


if __name__ == "__main__":
    print(lamina.backend_info())
    print_rows(rows())
