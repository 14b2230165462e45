"""The benchmark entry points refuse to time a wrong result: `lamina bench` / compare.py
(the GEMM table), bench_training.py and bench_distributed.py each check what they benchmark
once against lamina.reference (or the numpy backend, whose kernels are lamina.reference) and
fail when a kernel is wrong or a worker dies. Here each check meets a kernel patched to be
wrong, and must fail."""
import importlib
import json
import os
import sys

import numpy as np
import pytest

import lamina
from lamina import bench

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


def _bench_module(name):
    if BENCHMARKS not in sys.path:
        sys.path.insert(0, BENCHMARKS)
    return importlib.import_module(name)


def _wrong_by(factor, fn):
    """fn, but its result (also when written to out=) scaled by `factor`."""
    def wrong(*args, **kwargs):
        r = fn(*args, **kwargs)
        r *= np.float32(factor)
        return r
    return wrong


def _one_element_off(fn):
    def wrong(*args, **kwargs):
        r = fn(*args, **kwargs)
        r.reshape(-1)[-1] += np.float32(1e-2) * (1 + abs(r.reshape(-1)[-1]))
        return r
    return wrong


def _tf32(fn):
    """The GEMM on inputs rounded to TF32 (10 mantissa bits), as a tensor-core path would."""
    def rounded(a):
        bits = np.ascontiguousarray(a, np.float32).view(np.uint32)
        return ((bits + np.uint32(1 << 12)) & np.uint32(0xFFFFE000)).view(np.float32)

    def wrong(a, b, *args, **kwargs):
        return fn(rounded(a), rounded(b), *args, **kwargs)
    return wrong


QUICK = dict(thread_counts=(1,), repeats=1, pause_s=0.0, quick=True)


def test_the_gemm_table_passes_a_correct_kernel():
    rows = bench.gemm_rows(**QUICK)
    assert [r.kernel for r in rows] == ["matmul", "matmul trans_b", "matmul", "linear+relu"]


@pytest.mark.parametrize("kernel,mutate", [("matmul", _one_element_off), ("matmul", _tf32),
                                           ("linear", _one_element_off), ("linear", lambda f: _wrong_by(1.001, f))],
                         ids=["matmul one element", "matmul tf32", "linear one element", "linear 0.1%"])
def test_the_gemm_table_refuses_a_wrong_kernel(monkeypatch, capsys, kernel, mutate):
    monkeypatch.setattr(lamina.ops, kernel, mutate(getattr(lamina.ops, kernel)))
    with pytest.raises(bench.ResultMismatch, match="off the reference"):
        bench.gemm_rows(**QUICK)
    # every entry point that prints the table exits non-zero and prints no table
    assert bench.main(["--quick", "--threads", "1"]) == 1
    from lamina.cli import main as cli_main
    assert cli_main(["bench", "--quick", "--threads", "1"]) == 1
    assert _bench_module("compare").main(["--quick", "--threads", "1"]) == 1
    out = capsys.readouterr()
    assert "GFLOP/s" not in out.out and "wrong result" in out.err


def test_check_matmul_accepts_float32_rounding_at_depth():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((8, 4096), dtype=np.float32), rng.standard_normal((4096, 5), dtype=np.float32)
    bench.check_matmul(a @ b, a, b)  # OpenBLAS's float32 product, another summation order
    with pytest.raises(bench.ResultMismatch):
        bench.check_matmul(np.full((8, 5), np.nan, np.float32), a, b)
    with pytest.raises(bench.ResultMismatch, match="shape"):
        bench.check_matmul((a @ b)[:, :4], a, b)


# -- bench_training.py ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mnist():
    return _bench_module("bench_training").mnist_numpy(512)


@pytest.mark.parametrize("model_name,batch", [("mlp", 32), ("lenet5", 64)])
def test_training_check_passes_the_native_backend(mnist, model_name, batch):
    bt = _bench_module("bench_training")
    mine, ref = bt.check_training(model_name, batch, 2, *mnist)
    assert np.isfinite(mine) and mine == pytest.approx(ref, rel=1e-5)


@pytest.mark.parametrize("kernel,mutate", [("linear", lambda f: _wrong_by(1.01, f)),
                                           ("matmul", lambda f: _wrong_by(np.nan, f))],
                         ids=["linear 1% off", "matmul NaN"])
def test_training_check_refuses_a_wrong_kernel(monkeypatch, mnist, kernel, mutate):
    bt = _bench_module("bench_training")
    native = lamina.get_backend("native")
    monkeypatch.setattr(native, kernel, mutate(getattr(native, kernel)))
    with pytest.raises(bt.TrainingMismatch):
        bt.check_training("mlp", 32, 2, *mnist)
    # the table's rows check before they time
    with pytest.raises(bt.TrainingMismatch):
        bt.throughput_rows((1,), steps=2, repeats=1)


# -- bench_distributed.py ------------------------------------------------------------------------
def _worker(bd, capsys, prefix, *extra):
    args = ["--worker", "--images", "128", "--batch", "32", "--epochs", "1", "--reps", "1", "--save", str(prefix)]
    threads = lamina.get_num_threads()
    try:
        bd.main(args + list(extra))
    finally:
        lamina.set_num_threads(threads)
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[7:]), str(prefix)


def test_distributed_check_compares_with_the_numpy_backend(monkeypatch, capsys, tmp_path):
    bd = _bench_module("bench_distributed")
    ref = _worker(bd, capsys, tmp_path / "ref", "--backend", "numpy", "--warmup-only")
    good = _worker(bd, capsys, tmp_path / "good")
    other = _worker(bd, capsys, tmp_path / "other", "--threads", "2")
    gaps = bd.check_runs({"1x1": good, "1x2": other}, ref)
    assert gaps["warmup"] < 1e-4 and gaps["loss"] < 1e-4, gaps

    native = lamina.get_backend("native")
    monkeypatch.setattr(native, "conv2d", _wrong_by(1.01, native.conv2d))
    bad = _worker(bd, capsys, tmp_path / "bad")
    with pytest.raises(SystemExit, match="numpy backend"):
        bd.check_runs({"1x1": good, "1x2": bad}, ref)
    # a configuration whose warm-up is right and whose timed epochs are not
    with pytest.raises(SystemExit, match="epoch losses"):
        bd.check_runs({"1x2": other, "1x1": (dict(good[0], loss=[1.1 * v for v in good[0]["loss"]]), good[1])}, ref)
    with pytest.raises(SystemExit, match="not finite"):
        bd.check_runs({"1x2": (dict(other[0], loss=[float("nan")]), other[1])}, ref)


def test_a_dead_worker_fails_the_distributed_benchmark():
    bd = _bench_module("bench_distributed")
    with pytest.raises(SystemExit, match="exit status 3"):
        bd._launch([sys.executable, "-c", "print('RESULT {}'); import os; os._exit(3)"], dict(os.environ))
    with pytest.raises(SystemExit, match="no result"):
        bd._launch([sys.executable, "-c", "pass"], dict(os.environ))
    assert bd._launch([sys.executable, "-c", "print('RESULT {\"x\": 1}')"], dict(os.environ)) == {"x": 1}
