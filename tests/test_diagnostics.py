"""lamina.diagnostics: gradient norms, the Hessian spectrum (against an exact Hessian), MC dropout."""
import numpy as np
import pytest

import lamina
from lamina import losses, optim
from lamina.diagnostics import (GradientNormRecorder, exact_hessian, gradient_norms, hessian_spectrum,
                                hessian_vector_product, lanczos, mc_dropout_predict, saddle_index)
from lamina.nn import Dense, Dropout, Flatten, ReLU, Sequential, Sigmoid, Softmax, Tanh
from lamina.transfer import clone


# -- an independent tiny network: x -> tanh(x W1^T + b1) W2^T + b2 -> mean cross-entropy ---------
def _unpack(theta, d, h, k):
    i = 0
    W1 = theta[i: i + h * d].reshape(h, d); i += h * d
    b1 = theta[i: i + h]; i += h
    W2 = theta[i: i + k * h].reshape(k, h); i += k * h
    b2 = theta[i: i + k]
    return W1, b1, W2, b2


def _grad(theta, X, y, d, h, k):
    """The analytic gradient (backpropagation by hand); works for complex theta (complex step)."""
    W1, b1, W2, b2 = _unpack(theta, d, h, k)
    n = len(X)
    a = np.tanh(X @ W1.T + b1)
    z = a @ W2.T + b2
    z = z - z.real.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    d2 = p.copy()
    d2[np.arange(n), y] -= 1
    d2 /= n
    d1 = (d2 @ W2) * (1 - a * a)
    return np.concatenate([(d1.T @ X).ravel(), d1.sum(0), (d2.T @ a).ravel(), d2.sum(0)])


def _exact_hessian(theta, X, y, d, h, k):
    """Complex-step derivative of the analytic gradient: exact to rounding (no subtraction)."""
    n = theta.size
    H = np.empty((n, n))
    step = 1e-30
    for i in range(n):
        t = theta.astype(complex)
        t[i] += 1j * step
        H[:, i] = _grad(t, X, y, d, h, k).imag / step
    return (H + H.T) / 2


@pytest.fixture
def tiny(rng):
    d, h, k, n = 5, 4, 3, 40
    lamina.seed(11)
    model = Sequential(Dense(d, h, init="xavier"), Tanh(), Dense(h, k, init="xavier"))
    for p in model.parameters():  # nonzero biases, larger weights: a clearly indefinite Hessian
        p.assign(rng.standard_normal(p.shape).astype(np.float32))
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.integers(0, k, n)
    theta = np.concatenate([p.data.astype(np.float64).ravel() for p in model.parameters()])
    H = _exact_hessian(theta, X.astype(np.float64), y, d, h, k)
    return model, X, y, theta, H


def test_reference_gradient_matches_lamina(tiny):
    model, X, y, theta, H = tiny
    with lamina.use_backend("numpy"):
        m64 = clone(model).astype(np.float64).to("numpy")
        out = m64.forward(X.astype(np.float64))
        _, g = losses.CrossEntropy()(out, y)
        m64.zero_grad()
        m64.backward(g)
    ours = np.concatenate([p.grad.ravel() for p in m64.parameters()])
    np.testing.assert_allclose(ours, _grad(theta, X.astype(np.float64), y, 5, 4, 3), rtol=1e-10, atol=1e-13)


def test_hessian_vector_product_and_full_matrix(tiny, rng):
    model, X, y, theta, H = tiny
    v = rng.standard_normal(theta.size)
    np.testing.assert_allclose(hessian_vector_product(model, X, y, v), H @ v, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(exact_hessian(model, X, y), H, rtol=1e-5, atol=1e-7)


def test_hessian_spectrum_matches_the_exact_hessian(tiny):
    model, X, y, theta, H = tiny
    ev = np.linalg.eigvalsh(H)
    assert ev[0] < -1e-3 and ev[-1] > 1e-3  # the test point is a saddle-like point
    full = hessian_spectrum(model, X, y, full=True)
    assert full.full and full.n_params == theta.size == len(full.ritz_values)
    np.testing.assert_allclose(np.sort(full.ritz_values), ev, atol=1e-6 * np.abs(ev).max())
    assert full.saddle_index == pytest.approx(saddle_index(ev))
    assert full.lambda_min == pytest.approx(ev[0], abs=1e-6) and full.lambda_max == pytest.approx(ev[-1], abs=1e-6)
    # k extreme eigenvalues from a short run (fewer steps than parameters)
    short = hessian_spectrum(model, X, y, k=6, steps=25)
    assert not short.full and len(short.eigenvalues) == 6
    np.testing.assert_allclose(short.eigenvalues[:3], ev[:3], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(short.eigenvalues[3:], ev[-3:], rtol=1e-5, atol=1e-6)
    top = hessian_spectrum(model, X, y, k=2, steps=20, which="largest")
    np.testing.assert_allclose(top.eigenvalues, ev[-2:], rtol=1e-5)
    mag = hessian_spectrum(model, X, y, k=3, steps=25, which="magnitude")
    np.testing.assert_allclose(mag.eigenvalues, np.sort(ev[np.argsort(-np.abs(ev))[:3]]), rtol=1e-5, atol=1e-7)
    assert 0.0 <= short.saddle_index <= 1.0
    assert full.loss == pytest.approx(model.evaluate(X, y)[0], rel=1e-5)
    # the model itself is untouched (work happens on a float64 copy)
    assert model.dtype == np.float32
    np.testing.assert_array_equal(np.concatenate([p.data.ravel() for p in model.parameters()]),
                                  theta.astype(np.float32))


def test_hessian_skips_parameter_free_prefix_and_frozen_layers(tiny, rng):
    model, X, y, theta, H = tiny
    wrapped = Sequential(Flatten(), *model.layers)
    X4 = X.reshape(len(X), 1, 1, 5)
    full = hessian_spectrum(wrapped, X4, y, full=True)
    np.testing.assert_allclose(np.sort(full.ritz_values), np.linalg.eigvalsh(H), atol=1e-6 * np.abs(H).max())
    model[0].freeze()
    sub = hessian_spectrum(model, X, y, full=True)  # only the second layer's 15 parameters
    n1 = 5 * 4 + 4
    np.testing.assert_allclose(np.sort(sub.ritz_values), np.linalg.eigvalsh(H[n1:, n1:]), atol=1e-6)
    model[0].unfreeze()


def test_lanczos_on_a_known_matrix_with_repeated_eigenvalues():
    d = np.array([3.0, 3.0, 3.0, -1.0, 0.0, 0.0, 2.0, 5.0])
    a, b = lanczos(lambda v: d * v, len(d), len(d), seed=0)
    T = np.diag(a) + np.diag(b, 1) + np.diag(b, -1)
    np.testing.assert_allclose(np.linalg.eigvalsh(T), np.sort(d), atol=1e-10)


def test_saddle_index_of_arrays():
    assert saddle_index([-2.0, 1.0, 3.0, -1e-12]) == 0.25  # the tiny one counts as zero
    assert saddle_index([1.0, 2.0]) == 0.0
    assert saddle_index([-1.0, -2.0]) == 1.0


# -- gradient norms --------------------------------------------------------------------------
def _sigmoid_mlp():
    lamina.seed(5)
    return Sequential(Flatten(), Dense(20, 8, init="normal"), Sigmoid(), Dense(8, 8, init="normal"), Sigmoid(),
                      Dense(8, 4, init="normal"))


def test_gradient_norms_match_a_direct_backward(rng):
    model = _sigmoid_mlp()
    X = rng.random((50, 20), dtype=np.float32)
    y = rng.integers(0, 4, 50)
    out = model.forward(X)
    _, g = losses.CrossEntropy()(out, y)
    model.zero_grad()
    model.backward(g)
    direct = [(float(np.linalg.norm(layer.weight.grad)), float(np.linalg.norm(layer.bias.grad)))
              for layer in model.layers if layer.parameters()]
    for bs in (None, 50, 7):
        rows = gradient_norms(model, X, y, batch_size=bs)
        assert [r["layer"] for r in rows] == ["1", "3", "5"]
        assert [r["type"] for r in rows] == ["Dense"] * 3
        for r, (w, b) in zip(rows, direct):
            assert r["weight"] == pytest.approx(w, rel=1e-4)
            assert r["bias"] == pytest.approx(b, rel=1e-4)
            assert r["weight_rms"] > 0 and r["relative"] > 0


def test_gradient_norms_include_frozen_layers_and_keep_them_frozen(rng):
    model = _sigmoid_mlp()
    model[1].freeze()
    X = rng.random((16, 20), dtype=np.float32)
    y = rng.integers(0, 4, 16)
    rows = gradient_norms(model, X, y)
    assert rows[0]["weight"] > 0 and not model[1].weight.trainable
    rows = gradient_norms(model, X, y, include_frozen=False)
    assert rows[0]["weight"] is None and rows[0]["bias"] is None and rows[1]["weight"] > 0


def test_gradient_norm_recorder_in_fit(rng):
    model = _sigmoid_mlp()
    X = rng.random((64, 20), dtype=np.float32)
    y = rng.integers(0, 4, 64)
    rec = GradientNormRecorder(X[:32], y[:32])
    model.fit(X, y, epochs=3, batch_size=16, optimizer=optim.SGD(model.parameters(), lr=0.1), callbacks=[rec],
              seed=0, verbose=0)
    assert rec.epochs == [0, 1, 2, 3]
    s = rec.series("bias")
    assert list(s) == ["1", "3", "5"] and all(len(v) == 4 for v in s.values())
    assert s["1"][0] != s["1"][-1]
    rec2 = GradientNormRecorder(X[:32], y[:32], every_batches=2)
    model.fit(X, y, epochs=1, batch_size=16, optimizer=optim.SGD(model.parameters(), lr=0.1), callbacks=[rec2],
              seed=0, verbose=0)
    assert [r["step"] for r in rec2.records] == [0, 2, 4]


# -- MC dropout ------------------------------------------------------------------------------
def test_mc_dropout_std_nonzero_with_dropout_and_zero_without(rng):
    X = rng.random((30, 10), dtype=np.float32)
    lamina.seed(3)
    with_dropout = Sequential(Dense(10, 32), ReLU(), Dropout(0.5), Dense(32, 4))
    mean, std = mc_dropout_predict(with_dropout, X, samples=20)
    assert mean.shape == std.shape == (30, 4)
    np.testing.assert_allclose(mean.sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(std >= 0) and np.mean(std > 0) > 0.9 and std.max() > 1e-3
    lamina.seed(3)
    plain = Sequential(Dense(10, 32), ReLU(), Dense(32, 4))
    mean0, std0 = mc_dropout_predict(plain, X, samples=10, batch_size=7)
    assert np.all(std0 == 0.0)
    logits = plain.predict(X)
    p = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(mean0, p / p.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)
    # raw outputs, and no second softmax after a Softmax layer
    _, s_raw = mc_dropout_predict(with_dropout, X, samples=5, probabilities=False)
    assert s_raw.max() > 0
    probs = Sequential(*with_dropout.layers, Softmax())
    m2, _ = mc_dropout_predict(probs, X, samples=5)
    np.testing.assert_allclose(m2.sum(1), 1.0, rtol=1e-5)
    # a model that ends in Softmax gives its own probabilities (a second softmax would flatten them)
    m3, s3 = mc_dropout_predict(Sequential(*plain.layers, Softmax()), X, samples=3)
    np.testing.assert_allclose(m3, mean0, rtol=1e-5, atol=1e-7)
    assert np.all(s3 == 0.0)
    with pytest.raises(ValueError, match="samples"):
        mc_dropout_predict(plain, X, samples=0)


def test_gradient_norms_of_an_rnn_combine_its_weights(rng):
    from lamina.nn import RNN

    lamina.seed(4)
    model = Sequential(RNN(3, 5), Dense(5, 2))
    X = rng.standard_normal((8, 4, 3)).astype(np.float32)
    y = rng.integers(0, 2, 8)
    rows = gradient_norms(model, X, y)
    assert [r["type"] for r in rows] == ["RNN", "Dense"]
    rnn = model[0]
    expected = np.sqrt(np.sum(rnn.weight_ih.grad.astype(np.float64) ** 2) + np.sum(rnn.weight_hh.grad.astype(np.float64) ** 2))
    assert rows[0]["weight"] == pytest.approx(expected, rel=1e-6)
    assert rows[0]["bias"] == pytest.approx(np.linalg.norm(rnn.bias.grad), rel=1e-6)
