"""lamina.transfer: freeze / unfreeze, transfer (copy + freeze + head), fine_tune's scaled rate."""
import numpy as np
import pytest

import lamina
from lamina import optim
from lamina.nn import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential
from lamina.transfer import clone, count_parameters, fine_tune, freeze, transfer, unfreeze


def _mlp(seed=0):
    lamina.seed(seed)
    return Sequential(Dense(12, 16), ReLU(), Dense(16, 8), ReLU(), Dense(8, 3))


def _data(rng, n=64, d=12, k=3):
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.integers(0, k, n)
    return X, y


def test_freeze_unfreeze_upto():
    m = _mlp()
    freeze(m, upto=2)
    assert [p.trainable for p in m.parameters()] == [False, False, True, True, True, True]
    freeze(m)
    assert not any(p.trainable for p in m.parameters())
    unfreeze(m, upto=-1, lr_scale=0.5)  # all but the last layer
    assert [p.trainable for p in m.parameters()] == [True, True, True, True, False, False]
    assert [p.lr_scale for p in m.parameters()][:4] == [0.5] * 4
    freeze(m[0])  # a single layer
    assert not m[0].weight.trainable
    with pytest.raises(ValueError, match="upto"):
        freeze(m, upto=99)


@pytest.mark.parametrize("make_opt", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.01),
    lambda ps: optim.AdamW(ps, lr=0.01),
], ids=["sgd-wd", "nesterov", "adam-l2", "adamw"])
def test_frozen_parameters_bit_identical_after_training(rng, make_opt):
    X, y = _data(rng)
    m = _mlp()
    freeze(m, upto=2)
    frozen = {id(p): p.data.copy() for p in m.parameters() if not p.trainable}
    live = {id(p): p.data.copy() for p in m.parameters() if p.trainable}
    m.fit(X, y, epochs=3, batch_size=16, optimizer=make_opt(m.parameters()), seed=0, verbose=0)
    for p in m.parameters():
        if id(p) in frozen:
            assert np.array_equal(p.data, frozen[id(p)]), p
            assert p.data.tobytes() == frozen[id(p)].tobytes()
        else:
            assert not np.array_equal(p.data, live[id(p)]), p


def test_transfer_copies_freezes_and_appends_head(rng):
    X, y = _data(rng)
    src = _mlp()
    src.fit(X, y, epochs=2, batch_size=16, optimizer=optim.SGD(src.parameters(), lr=0.05), seed=0, verbose=0)
    before = [p.data.copy() for p in src.parameters()]
    head = [Dense(8, 8), ReLU(), Dense(8, 2)]
    m = transfer(src, keep=4, head=head)
    assert len(m) == 7 and m.transferred == 4
    assert m[0] is not src[0] and m[4] is head[0]
    for a, b in zip(m[:4].parameters(), src[:4].parameters()):
        assert np.array_equal(a.data, b.data) and a.data is not b.data
        assert not a.trainable
    assert all(p.trainable for p in m[4:].parameters())
    assert count_parameters(m) == (8 * 8 + 8 + 8 * 2 + 2, sum(p.size for p in m.parameters()))
    y2 = rng.integers(0, 2, len(X))
    frozen = [p.data.copy() for p in m[:4].parameters()]
    m.fit(X, y2, epochs=2, batch_size=16, optimizer=optim.SGD(m.parameters(), lr=0.1, momentum=0.9), seed=1,
          verbose=0)
    for p, f in zip(m[:4].parameters(), frozen):
        assert np.array_equal(p.data, f)
    for p, b in zip(src.parameters(), before):  # the source model never changes
        assert np.array_equal(p.data, b)
    # the features are the source's: same outputs for the kept layers
    np.testing.assert_array_equal(m[:4].predict(X), src[:4].predict(X))


def test_transfer_without_copy_shares_layers():
    src = _mlp()
    m = transfer(src, keep=2, head=[Dense(16, 2)], freeze=False, copy=False)
    assert m[0] is src[0] and m[0].weight.trainable
    with pytest.raises(ValueError, match="keep"):
        transfer(src, keep=6)


def test_transfer_of_a_cnn_keeps_conv_features(rng):
    lamina.seed(3)
    src = Sequential(Conv2D(1, 3, 3), ReLU(), MaxPool2D(2), Flatten(), Dense(3 * 3 * 3, 4))
    X = rng.random((6, 1, 8, 8), dtype=np.float32)
    m = transfer(src, keep=4, head=[Dense(27, 2)])
    np.testing.assert_array_equal(m[:4].predict(X), src[:4].predict(X))
    w0 = m[0].weight.data.copy()
    m.fit(X, np.array([0, 1, 0, 1, 0, 1]), epochs=2, batch_size=3,
          optimizer=optim.SGD(m.parameters(), lr=0.1, momentum=0.9), seed=0, verbose=0)
    assert np.array_equal(m[0].weight.data, w0)


def test_fine_tune_uses_the_scaled_rate(rng):
    X, y = _data(rng, n=32)
    src = _mlp()
    m = transfer(src, keep=4, head=[Dense(8, 3)])
    fine_tune(m, lr_scale=0.1)
    assert all(p.trainable for p in m.parameters())
    assert [p.lr_scale for p in m.parameters()] == [0.1] * 4 + [1.0] * 2
    lr = 0.5
    opt = optim.SGD(m.parameters(), lr=lr)
    before = [p.data.copy() for p in m.parameters()]
    out = m.forward(X, training=True)
    loss, g = lamina.losses.CrossEntropy()(out, y)
    m.zero_grad()
    m.backward(g)
    grads = [p.grad.copy() for p in m.parameters()]
    opt.step()
    for p, b, gr in zip(m.parameters(), before, grads):
        expected = b - np.float32(lr * p.lr_scale) * gr
        np.testing.assert_allclose(p.data, expected, rtol=1e-6, atol=1e-7)
        step = np.abs(b - p.data).max()
        assert step > 0
    # transferred layers moved 10x less per unit of gradient than the head
    ratio_t = np.abs(before[0] - m[0].weight.data).max() / np.abs(grads[0]).max()
    ratio_h = np.abs(before[4] - m[4].weight.data).max() / np.abs(grads[4]).max()
    assert ratio_t == pytest.approx(0.1 * ratio_h, rel=1e-3)


def test_fine_tune_with_adam_scales_the_step():
    lamina.seed(0)
    m = transfer(_mlp(), keep=2, head=[Dense(16, 3)])
    fine_tune(m, lr_scale=0.25)
    opt = optim.Adam(m.parameters(), lr=0.01)
    before = [p.data.copy() for p in m.parameters()]
    for p in m.parameters():
        p.grad = np.ones_like(p.data)
    opt.step()
    # Adam's first step moves every coordinate by lr * scale (sign of the gradient)
    np.testing.assert_allclose(before[0] - m.parameters()[0].data, 0.01 * 0.25, rtol=1e-4)
    np.testing.assert_allclose(before[2] - m.parameters()[2].data, 0.01, rtol=1e-4)


def test_fine_tune_layer_selection():
    m = _mlp()
    freeze(m)
    fine_tune(m, lr_scale=0.3)  # no `transferred`: the frozen layers
    assert all(p.trainable and p.lr_scale == 0.3 for p in m.parameters())
    m = _mlp()
    freeze(m)
    fine_tune(m, lr_scale=0.2, layers=[m[2], 4])
    assert [p.trainable for p in m.parameters()] == [False, False, True, True, True, True]
    m = _mlp()
    freeze(m)
    fine_tune(m, layers=1)
    assert [p.trainable for p in m.parameters()] == [True, True, False, False, False, False]
    with pytest.raises(ValueError, match="not a layer"):
        fine_tune(m, layers=[Dense(2, 2)])


def test_clone_is_independent():
    m = _mlp()
    m[0].weight.trainable = False
    m[2].weight.lr_scale = 0.5
    c = clone(m)
    assert isinstance(c, Sequential)
    for a, b in zip(m.parameters(), c.parameters()):
        assert np.array_equal(a.data, b.data) and a.data is not b.data
        assert (a.trainable, a.lr_scale) == (b.trainable, b.lr_scale)
    c[0].weight.data += 1
    assert not np.array_equal(m[0].weight.data, c[0].weight.data)
