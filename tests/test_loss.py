"""mse and binary_cross_entropy: native vs reference on every CPU path, conventions, clamping,
the reference gradients by finite differences, bad inputs."""
import numpy as np
import pytest

import lamina
from lamina import ops, reference as ref
from gradcheck import assert_grad_close, numeric_grad

SHAPES = [(1,), (7,), (16,), (33,), (3, 5), (2, 3, 17), (4, 0), (300, 701), (5, 1, 1)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_mse_matches_reference(isa, threads, rng, shape):
    a = rng.standard_normal(shape).astype(np.float32)
    y = rng.standard_normal(shape).astype(np.float32)
    loss, grad = ops.mse(a, y)
    rloss, rgrad = ref.mse(a.astype(np.float64), y.astype(np.float64))
    assert isinstance(loss, float) and grad.dtype == np.float32 and grad.shape == shape
    np.testing.assert_allclose(loss, rloss, rtol=1e-6)
    np.testing.assert_allclose(grad, rgrad, rtol=2e-7, atol=1e-30)


def test_mse_convention_mean_over_examples_not_elements():
    a = np.zeros((4, 3), np.float32)
    y = np.ones((4, 3), np.float32)
    loss, grad = ops.mse(a, y)
    assert loss == pytest.approx(12 / (2 * 4))  # 1/(2n) sum ||y - a||^2, n = 4 examples
    np.testing.assert_array_equal(grad, np.full((4, 3), -0.25, np.float32))
    assert ref.mse(a, y)[0] == pytest.approx(loss)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_bce_matches_reference(isa, threads, rng, shape):
    p = rng.uniform(0.001, 0.999, shape).astype(np.float32)
    t = rng.uniform(0, 1, shape).astype(np.float32)
    loss, grad = ops.binary_cross_entropy(p, t)
    rloss, rgrad = ref.binary_cross_entropy(p.astype(np.float64), t.astype(np.float64))
    if p.size == 0:
        assert np.isnan(loss) and np.isnan(rloss) and grad.shape == shape
        return
    np.testing.assert_allclose(loss, rloss, rtol=2e-6)
    np.testing.assert_allclose(grad, rgrad, rtol=3e-6, atol=1e-30)


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


def test_reference_gradients_by_finite_differences(rng):
    a = rng.standard_normal((4, 3))
    y = rng.standard_normal((4, 3))
    assert_grad_close(ref.mse(a, y)[1], numeric_grad(lambda z: ref.mse(z, y)[0], a))
    p = rng.uniform(0.05, 0.95, (3, 5))
    t = rng.uniform(0, 1, (3, 5))
    assert_grad_close(ref.binary_cross_entropy(p, t)[1],
                      numeric_grad(lambda z: ref.binary_cross_entropy(z, t)[0], p), rtol=1e-5)


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
