"""lamina.distill: the distillation loss, distill, and the two FitNets stages."""
import numpy as np
from gradcheck import numeric_grad
import pytest

import lamina
from lamina import losses, optim
from lamina.distill import DistillationLoss, distill, fitnets, make_regressor
from lamina.nn import Conv2D, Dense, Flatten, ReLU, Sequential


@pytest.fixture(scope="module")
def digits():
    X, y = lamina.datasets.load_mnist()
    return X[:600].reshape(600, -1), y[:600]


@pytest.mark.parametrize("T,alpha", [(1.0, 0.5), (4.0, 0.9), (2.5, 1.0), (3.0, 0.0)])
def test_distillation_loss_gradient(rng, T, alpha):
    s = rng.standard_normal((5, 4)) * 2
    t = rng.standard_normal((5, 4)) * 3
    y = rng.integers(0, 4, 5)
    loss = DistillationLoss(T, alpha)
    target = loss.pack_targets(t, y)
    with lamina.use_backend("numpy"):
        val, g = loss(s, target)
        num = numeric_grad(lambda z: loss(z, target)[0], s.copy())
    np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-8)
    assert val >= 0


def test_distillation_loss_limits(rng):
    s = rng.standard_normal((6, 3)).astype(np.float32)
    y = rng.integers(0, 3, 6)
    ce, gce = losses.CrossEntropy()(s, y)
    lo = DistillationLoss(4.0, 0.0)
    val, g = lo(s, lo.pack_targets(rng.standard_normal((6, 3)), y).astype(np.float32))
    assert val == pytest.approx(ce, rel=1e-5)
    np.testing.assert_allclose(g, gce, rtol=1e-5, atol=1e-7)
    hi = DistillationLoss(2.0, 1.0)  # the student equals the teacher: nothing to learn
    val, g = hi(s, hi.pack_targets(s, y).astype(np.float32))
    assert abs(val) < 1e-5 and np.abs(g).max() < 1e-6
    assert hi.count_correct(s, hi.pack_targets(s, y))[1] == 6
    with pytest.raises(ValueError, match="temperature"):
        DistillationLoss(0.0)
    with pytest.raises(ValueError, match="alpha"):
        DistillationLoss(2.0, 1.5)


def _teacher(X, y, seed=0):
    lamina.seed(seed)
    t = Sequential(Dense(784, 64), ReLU(), Dense(64, 10))
    t.fit(X, y, epochs=3, batch_size=32, optimizer=optim.SGD(t.parameters(), lr=0.05, momentum=0.9), seed=0,
          verbose=0)
    return t


def test_distill_trains_the_student_towards_the_teacher(digits):
    X, y = digits
    teacher = _teacher(X, y)
    lamina.seed(1)
    student = Sequential(Dense(784, 16), ReLU(), Dense(16, 10))
    t_logits = teacher.predict(X)
    before = DistillationLoss(4.0, 1.0)
    kl0 = before(student.predict(X), before.pack_targets(t_logits, y).astype(np.float32))[0]
    hist = distill(teacher, student, X, y, temperature=4.0, alpha=0.9, epochs=3, lr=0.05, seed=0,
                   validation_data=(X[:100], y[:100]))
    kl1 = before(student.predict(X), before.pack_targets(t_logits, y).astype(np.float32))[0]
    assert kl1 < kl0
    assert hist["loss"][-1] < hist["loss"][0]
    assert "val_accuracy" in hist
    loss, acc = student.evaluate(X, y)  # the model's loss is a plain cross-entropy again
    assert acc > 0.5 and np.isfinite(loss)
    agree = np.mean(student.predict(X).argmax(1) == t_logits.argmax(1))
    assert agree > 0.6


def test_fitnets_hint_stage_lowers_the_hint_mse(digits):
    X, y = digits
    teacher = _teacher(X, y)
    lamina.seed(2)
    student = Sequential(Dense(784, 12), ReLU(), Dense(12, 12), ReLU(), Dense(12, 12), ReLU(), Dense(12, 10))
    w_before = student[0].weight.data.copy()
    w_top_before = student[6].weight.data.copy()
    r = fitnets(teacher, student, X, y, hint=(1, 3), hint_epochs=3, hint_lr=0.01, epochs=0, seed=0)
    assert len(r.hint_mse) == 4
    assert r.hint_mse[-1] < 0.8 * r.hint_mse[0], r.hint_mse
    assert [type(x).__name__ for x in r.regressor] == ["Dense"]
    assert (r.regressor[0].in_features, r.regressor[0].out_features) == (12, 64)
    assert not np.array_equal(student[0].weight.data, w_before)  # the guided part trained
    assert np.array_equal(student[6].weight.data, w_top_before)  # the layers above did not (epochs=0)
    # stage 2 then trains the whole student
    r2 = fitnets(teacher, student, X, y, hint=(1, 3), hint_epochs=1, epochs=2, seed=1)
    assert not np.array_equal(student[6].weight.data, w_top_before)
    assert r2.kd_history["loss"][-1] < r2.kd_history["loss"][0]


def test_make_regressor_shapes(rng):
    reg = make_regressor((8, 10, 10), (16, 6, 6))
    assert isinstance(reg[0], Conv2D) and reg[0].kernel_size == (5, 5)
    x = rng.random((2, 8, 10, 10), dtype=np.float32)
    assert Sequential(*reg).predict(x).shape == (2, 16, 6, 6)
    reg = make_regressor((4, 3, 3), (20,))
    assert isinstance(reg[0], Flatten) and reg[1].in_features == 36
    assert isinstance(make_regressor((7,), (9,))[0], Dense)
    with pytest.raises(ValueError, match="regressor"):
        make_regressor((7,), (2, 3, 3))


def test_fitnets_bad_hint(digits):
    X, y = digits
    t = Sequential(Dense(784, 10))
    with pytest.raises(ValueError, match="hint"):
        fitnets(t, Sequential(Dense(784, 10)), X[:10], y[:10], hint=(5, 0))
