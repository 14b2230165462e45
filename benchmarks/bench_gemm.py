"""pytest-benchmark: lamina.ops.matmul / linear vs NumPy (OpenBLAS), one group per shape.

    python -m pytest benchmarks/bench_gemm.py                 # time (add --benchmark-only)
    python -m pytest benchmarks/bench_gemm.py --benchmark-disable   # run once as tests
The interleaved ratio table of the issue is `python benchmarks/compare.py`.
"""
import numpy as np
import pytest

import lamina
from lamina import reference
from lamina.bench import DL_SHAPES, SQUARE

CASES = [(n, n, n, False) for n in SQUARE] + [(m, k, n, tb) for (m, k, n) in DL_SHAPES for tb in (False, True)]
IMPLS = {"lamina": lamina.ops.matmul, "numpy": reference.matmul}


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("m,k,n,tb", CASES, ids=[f"{m}x{k}x{n}{'T' if tb else ''}" for m, k, n, tb in CASES])
def test_matmul(benchmark, impl, m, k, n, tb):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
    benchmark.group = f"matmul {m}x{k}x{n}{' trans_b' if tb else ''}"
    benchmark.extra_info["gflop"] = 2e-9 * m * n * k
    c = benchmark(IMPLS[impl], a, b, trans_b=tb)
    assert c.shape == (m, n)


@pytest.mark.parametrize("impl", ["lamina", "numpy"])
def test_linear_relu(benchmark, impl):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 800), dtype=np.float32)
    w = rng.standard_normal((500, 800), dtype=np.float32)
    b = rng.standard_normal(500, dtype=np.float32)
    benchmark.group = "linear+relu 64x800->500"
    if impl == "lamina":
        y = benchmark(lamina.ops.linear, x, w, b, activation="relu")
    else:
        y = benchmark(lambda: np.maximum(x @ w.T + b, 0))
    assert y.shape == (64, 500)
