"""lamina.losses: values by their formulas, gradients by finite differences, bad labels."""
import numpy as np
import pytest
from nn_helpers import assert_close, numeric_grad

import lamina
from lamina import losses


def _check_grad(loss_fn, out, target):
    with lamina.use_backend("numpy"):
        _, g = loss_fn(out, target)
        num = numeric_grad(lambda: loss_fn(out, target)[0], out)
    assert_close(g, num, 1e-6, 1e-9)


def test_cross_entropy_value_and_gradient(rng):
    logits = rng.standard_normal((5, 4))
    labels = np.array([0, 3, 1, 1, 2])
    with lamina.use_backend("numpy"):
        loss, g = losses.CrossEntropy()(logits, labels)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert loss == pytest.approx(-np.log(p[np.arange(5), labels]).mean(), rel=1e-12)
    _check_grad(losses.CrossEntropy(), logits, labels)


def test_mse_uses_one_over_2n(rng):
    pred, target = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    with lamina.use_backend("numpy"):
        loss, g = losses.MSE()(pred, target)
    assert loss == pytest.approx(((pred - target) ** 2).sum() / (2 * 4), rel=1e-12)
    assert_close(g, (pred - target) / 4)
    _check_grad(losses.MSE(), pred, target)


def test_binary_cross_entropy_gradient_and_clamping(rng):
    prob = rng.uniform(0.1, 0.9, (3, 4))
    target = rng.integers(0, 2, (3, 4)).astype(np.float64)
    _check_grad(losses.BinaryCrossEntropy(), prob, target)
    # p of exactly 0 and 1 with the opposite targets: clipped to eps = 1e-7 and 1 - eps (in float32)
    lo, hi = np.float32(1e-7), np.float32(1 - 1e-7)
    want_loss = -(np.log(np.float64(lo)) + np.log1p(-np.float64(hi))) / 2
    want_g = np.array([[(lo - 1.0) / (lo * (1.0 - lo)), hi / (hi * (1.0 - hi))]]) / 2
    for be in ("numpy", "native"):
        loss, g = losses.BinaryCrossEntropy(backend=be)(np.array([[0.0, 1.0]], np.float32),
                                                       np.array([[1.0, 0.0]], np.float32))
        assert loss == pytest.approx(want_loss, rel=1e-4), be
        np.testing.assert_allclose(lamina.backend.get_backend(be).to_numpy(g), want_g, rtol=1e-3, err_msg=be)


@pytest.mark.parametrize("backend", ["native", "numpy"])
def test_cross_entropy_native_and_numpy_agree(rng, backend):
    logits = (rng.standard_normal((64, 10)) * 3).astype(np.float32)
    labels = rng.integers(0, 10, 64)
    ref = losses.CrossEntropy(backend="numpy")(logits.astype(np.float64), labels)
    loss, g = losses.CrossEntropy(backend=backend)(logits, labels)
    assert loss == pytest.approx(ref[0], rel=1e-5)
    assert_close(g, ref[1], 1e-4, 1e-7)


@pytest.mark.parametrize("backend", ["native", "numpy"])
@pytest.mark.parametrize("k", [3, 17, 33])
def test_cross_entropy_stable_for_huge_logits(backend, k):
    # huge logits at the end of the row (in the masked tail for k = 17, 33), exact results:
    # row 0 is right (loss 0), row 1 ties three ways (log 3), row 2 is wrong by 1e30
    logits = np.zeros((3, k), np.float32)
    logits[0, -1] = 1e30
    logits[1, -3:] = 5e29
    logits[2, -1], logits[2, 0] = 1e30, -1e30
    loss, g = losses.CrossEntropy(backend=backend)(logits, np.array([k - 1, k - 2, 0]))
    assert loss == pytest.approx((0 + np.log(3) + 2e30) / 3, rel=1e-6)
    want = np.zeros((3, k))
    want[1, -3:] = 1 / 3
    want[1, k - 2] -= 1
    want[2, -1], want[2, 0] = 1, -1
    np.testing.assert_allclose(lamina.backend.get_backend(backend).to_numpy(g), want / 3, rtol=1e-6, atol=1e-9)


def test_labels_validated():
    ce = losses.CrossEntropy()
    with pytest.raises(ValueError, match=r"labels\[1\]"):
        ce(np.zeros((2, 3), np.float32), np.array([0, 3]))
    with pytest.raises(ValueError, match="integer class labels"):
        ce.prepare_target(np.array([0.5, 1.0]), np.float32)
    assert ce.prepare_target(np.array([1.0, 2.0]), np.float32).dtype == np.int64


def test_accuracy_counting():
    out = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]], np.float32)
    assert losses.CrossEntropy().count_correct(out, np.array([1, 1, 1])) == (2, 3)
    assert losses.MSE().count_correct(out, np.eye(2, dtype=np.float32)[[1, 0, 0]]) == (2, 3)
    assert losses.MSE().count_correct(out[:, :1], out[:, :1]) is None
    assert losses.BinaryCrossEntropy().count_correct(out, (out > 0.5).astype(np.float32)) == (6, 6)


def test_get_by_name():
    assert isinstance(losses.get("mse"), losses.MSE)
    assert isinstance(losses.get(losses.CrossEntropy), losses.CrossEntropy)
    with pytest.raises(ValueError, match="unknown loss"):
        losses.get("hinge")
