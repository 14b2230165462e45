"""mse and binary_cross_entropy through opcheck (every CPU path and thread count, every
registered backend, the gradients by finite differences, PyTorch), conventions, clamping, bad
inputs."""
import numpy as np
import pytest

import lamina
import opcheck
from lamina import ops, reference as ref

SHAPES = [(1,), (7,), (16,), (33,), (3, 5), (4, 3), (2, 3, 17), (4, 0), (300, 701), (5, 1, 1)]


def _loss_close(loss_rtol, grad_rtol):
    def close(got, want, args, kw):  # an empty prob gives a NaN loss on both sides (NaN == NaN)
        np.testing.assert_allclose(got[0], want[0], rtol=loss_rtol)
        np.testing.assert_allclose(got[1], want[1], rtol=grad_rtol, atol=1e-30)
    return close


MSE = opcheck.Op("mse", loss=True, close=_loss_close(1e-6, 2e-7),
                 torch=lambda F, a, y: F.mse_loss(a, y, reduction="sum") / (2 * a.shape[0]))
BINARY_CROSS_ENTROPY = opcheck.Op("binary_cross_entropy", loss=True, close=_loss_close(2e-6, 3e-6), fd_rtol=1e-5,
                                  torch=lambda F, p, t: F.binary_cross_entropy(p, t))


@pytest.mark.parametrize("target", opcheck.targets(MSE))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_mse_matches_reference(target, rng, shape):
    a = rng.standard_normal(shape).astype(np.float32)
    opcheck.check(target, MSE, (a, rng.standard_normal(shape).astype(np.float32)))


def test_mse_convention_mean_over_examples_not_elements():
    a = np.zeros((4, 3), np.float32)
    y = np.ones((4, 3), np.float32)
    loss, grad = ops.mse(a, y)
    assert loss == pytest.approx(12 / (2 * 4))  # 1/(2n) sum ||y - a||^2, n = 4 examples
    np.testing.assert_array_equal(grad, np.full((4, 3), -0.25, np.float32))
    assert ref.mse(a, y)[0] == pytest.approx(loss)


@pytest.mark.parametrize("target", opcheck.targets(BINARY_CROSS_ENTROPY))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_bce_matches_reference(target, rng, shape):
    p = rng.uniform(0.001, 0.999, shape).astype(np.float32)
    opcheck.check(target, BINARY_CROSS_ENTROPY, (p, rng.uniform(0, 1, shape).astype(np.float32)))


def test_bce_exact_zero_and_one_are_finite(isa):
    p = np.float32([0, 1, 0, 1, 0.5, 1e-30])
    t = np.float32([0, 1, 1, 0, 1, 0])
    loss, grad = ops.binary_cross_entropy(p, t)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    rloss, rgrad = ref.binary_cross_entropy(p, t)
    np.testing.assert_allclose(loss, rloss, rtol=1e-6)
    np.testing.assert_allclose(grad, rgrad, rtol=1e-6)
    assert grad[2] < 0 and grad[3] > 0  # pulling p towards t
    # -log(eps) and -log(1 - (1 - eps)) (in float32) for the wrong certain predictions
    lo, hi = np.float64(np.float32(1e-7)), np.float64(np.float32(1 - 1e-7))
    assert loss == pytest.approx((-np.log(lo) - np.log(1 - hi) + np.log(2)) / 6, rel=1e-5)


def test_bce_small_probabilities_keep_relative_accuracy(isa):
    p = np.float32([1e-6, 1e-4, 3e-3] * 11)
    t = np.zeros_like(p)
    loss, _ = ops.binary_cross_entropy(p, t)
    want = -np.mean(np.log1p(-p.astype(np.float64)))
    assert loss == pytest.approx(want, rel=1e-6)


def test_nan_propagates(isa):
    p = np.float32([0.5, np.nan, 0.2])
    t = np.float32([1, 0, 0])
    loss, grad = ops.binary_cross_entropy(p, t)
    assert np.isnan(loss) and np.isnan(grad[1]) and np.all(np.isfinite(grad[[0, 2]]))
    loss, grad = ops.mse(p, t)
    assert np.isnan(loss) and np.isnan(grad[1])


def test_loss_does_not_depend_on_thread_count(rng):
    a = rng.random((700, 333)).astype(np.float32)
    y = rng.random((700, 333)).astype(np.float32)
    before = lamina.get_num_threads()
    try:
        got = []
        for nt in (1, 2, 3):
            lamina.set_num_threads(nt)
            got.append((ops.mse(a, y)[0], ops.binary_cross_entropy(a, y)[0]))
    finally:
        lamina.set_num_threads(before)
    assert got[0] == got[1] == got[2]


def test_bad_inputs():
    z = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="target"):
        ops.mse(z, np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="pred"):
        ops.mse(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32))
    with pytest.raises(ValueError, match="pred"):
        ops.mse(np.zeros((), np.float32), np.zeros((), np.float32))
    with pytest.raises(TypeError, match="pred"):
        ops.mse(z.astype(np.float64), z)
    with pytest.raises(TypeError, match="target"):
        ops.mse(z, [[0.0] * 4] * 3)
    with pytest.raises(ValueError, match="pred"):
        ops.mse(np.zeros((3, 8), np.float32)[:, ::2], z)
    with pytest.raises(ValueError, match="target"):
        ops.binary_cross_entropy(z, np.zeros(12, np.float32))
    with pytest.raises(TypeError, match="prob"):
        ops.binary_cross_entropy(z.astype(np.float16), z)
    with pytest.raises(ValueError, match="prob"):
        ops.binary_cross_entropy(np.zeros((3, 8), np.float32)[:, ::2], z)
    with pytest.raises(ValueError, match="eps"):
        ops.binary_cross_entropy(z, z, eps=0.0)
    with pytest.raises(ValueError, match="eps"):
        ops.binary_cross_entropy(z, z, eps=0.7)
