"""benchmarks/bench_layers.py refuses to time a wrong result: its batch_norm rows check the
native kernels against lamina.reference, its training rows check the LSTM and the CIFAR-size
CNN with BatchNorm against the same steps on the numpy backend. Each check passes the native
backend as it is and fails on a kernel patched to be wrong."""
import os
import sys

import numpy as np
import pytest

import lamina

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


@pytest.fixture(scope="module")
def bl():
    if BENCHMARKS not in sys.path:
        sys.path.insert(0, BENCHMARKS)
    import bench_layers
    return bench_layers


def _off_by(factor, fn, index=0):
    """fn, with its result (or its result's ``index``-th array) scaled by ``factor``."""
    def wrong(*args, **kwargs):
        r = fn(*args, **kwargs)
        (r[index] if isinstance(r, tuple) else r)[...] *= np.float32(factor)
        return r
    return wrong


@pytest.mark.parametrize("shape", [(64, 32, 16, 16), (256, 64, 8, 8)])
def test_batch_norm_check_passes_the_native_kernels(bl, shape):
    assert shape in bl.BN_SHAPES
    bl.check_batch_norm(shape)


@pytest.mark.parametrize("kernel,index", [("batch_norm", 0), ("batch_norm_backward", 0), ("batch_norm_backward", 1)],
                         ids=["y", "dx", "dweight"])
def test_batch_norm_check_refuses_a_wrong_kernel(monkeypatch, bl, kernel, index):
    native = lamina.get_backend("native")
    monkeypatch.setattr(native, kernel, _off_by(1.01, getattr(native, kernel), index))
    with pytest.raises(bl.ResultMismatch, match="off the reference"):
        bl.check_batch_norm(bl.BN_SHAPES[0])


@pytest.mark.parametrize("name", ["lstm", "cifar_cnn"])
def test_training_check_passes_the_native_backend(bl, name):
    mine, ref = bl.check_training(name, steps=1)
    assert np.isfinite(mine) and mine == pytest.approx(ref, rel=1e-5)


@pytest.mark.parametrize("name,kernel", [("lstm", "lstm_cell_backward"), ("cifar_cnn", "batch_norm_backward")])
def test_training_check_refuses_a_wrong_kernel(monkeypatch, bl, name, kernel):
    native = lamina.get_backend("native")
    monkeypatch.setattr(native, kernel, _off_by(1.01, getattr(native, kernel)))
    with pytest.raises(bl.TrainingMismatch):
        bl.check_training(name, steps=1)


def test_the_torch_twin_starts_from_lamina_weights(bl):
    torch = pytest.importorskip("torch")
    for name in bl.MODELS:
        data = bl.model_data(name, 1)
        mine = bl.lamina_trainer(name, data)
        theirs = bl.torch_trainer(torch, name, data, mine.model)
        assert mine() == pytest.approx(theirs(), rel=1e-4)  # one step from the same weights: the same loss
