"""lamina.init: each initialiser's statistics, orthogonality, random-walk omega, LSUV."""
import math

import numpy as np
import pytest

import lamina
from lamina import init, nn


def test_fans():
    assert init.fans((30, 20)) == (20, 30)
    assert init.fans((16, 6, 5, 5)) == (150, 400)
    with pytest.raises(ValueError, match="2 or more"):
        init.fans((5,))


def test_he_variance(rng):
    w = init.he((400, 300), rng)
    assert w.dtype == np.float32
    assert np.var(w) == pytest.approx(2 / 300, rel=0.03)
    assert abs(np.mean(w)) < 3 * math.sqrt(2 / 300 / w.size)
    c = init.he((64, 16, 3, 3), rng)
    assert np.var(c) == pytest.approx(2 / 144, rel=0.05)


def test_xavier_variance(rng):
    for dist in ("normal", "uniform"):
        w = init.xavier((300, 500), rng, distribution=dist)
        assert np.var(w) == pytest.approx(2 / 800, rel=0.03)
    u = init.xavier((300, 500), rng, distribution="uniform")
    assert np.abs(u).max() <= math.sqrt(6 / 800) + 1e-7


def test_normal_defaults_to_the_talks_n01(rng):
    w = init.normal((500, 400), rng)
    assert np.mean(w) == pytest.approx(0, abs=0.01) and np.std(w) == pytest.approx(1, rel=0.01)


@pytest.mark.parametrize("shape", [(20, 50), (50, 20), (30, 30), (8, 3, 3, 3)])
def test_orthogonal(rng, shape):
    w = init.orthogonal(shape, rng, dtype=np.float64).reshape(shape[0], -1)
    rows, cols = w.shape
    if rows <= cols:
        np.testing.assert_allclose(w @ w.T, np.eye(rows), atol=1e-12)
    else:
        np.testing.assert_allclose(w.T @ w, np.eye(cols), atol=1e-12)
    g = init.orthogonal((10, 10), rng, dtype=np.float64, gain=2.0)
    np.testing.assert_allclose(g.T @ g, 4 * np.eye(10), atol=1e-12)


def test_random_walk_omega_and_variance(rng):
    # Sussillo & Abbott: omega_ReLU = sqrt(2) exp(1.2 / (max(N, 6) - 2.4)); linear/tanh exp(1/(2N)).
    assert init.random_walk_gain(100, "relu") == pytest.approx(math.sqrt(2) * math.exp(1.2 / 97.6))
    assert init.random_walk_gain(3, "relu") == pytest.approx(math.sqrt(2) * math.exp(1.2 / 3.6))
    assert init.random_walk_gain(100, "linear") == pytest.approx(math.exp(1 / 200))
    assert init.random_walk_gain(100, "tanh") == init.random_walk_gain(100, "linear")
    with pytest.raises(ValueError, match="nonlinearity"):
        init.random_walk_gain(10, "gelu")
    w = init.random_walk((400, 256), rng)
    omega = init.random_walk_gain(256, "relu")
    assert np.var(w) == pytest.approx(omega ** 2 / 256, rel=0.03)


def test_seed_makes_layers_reproducible():
    lamina.seed(5)
    a = nn.Dense(10, 10).weight.data.copy()
    lamina.seed(5)
    np.testing.assert_array_equal(a, nn.Dense(10, 10).weight.data)


def test_lsuv_gives_unit_output_variance(rng):
    lamina.seed(0)
    model = nn.Sequential(nn.Conv2D(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2D(2), nn.Flatten(),
                          nn.Dense(8 * 14 * 14, 64), nn.Tanh(), nn.Dense(64, 32), nn.ReLU(), nn.Dense(32, 10))
    images = lamina.datasets.load_mnist()[0]
    X, fresh = images[:256], images[256:1280]
    init.lsuv(model, X, tol=0.05)
    for i, layer in enumerate(model):
        if isinstance(layer, (nn.Dense, nn.Conv2D)):
            # unit variance on images LSUV never saw (its own batch met its own rule by construction)
            var = np.var(model[: i + 1].predict(fresh))
            assert var == pytest.approx(1.0, abs=0.25), f"layer {i}: variance {var} on a fresh batch"
            # an orthogonal start, only rescaled: the rows of W (out, fan_in) are orthogonal, equal norms
            W = layer.weight.data.reshape(layer.weight.shape[0], -1).astype(np.float64)
            gram = W @ W.T
            assert np.allclose(gram, gram[0, 0] * np.eye(len(W)), atol=1e-4 * gram[0, 0]), f"layer {i}"
            assert not layer.bias.data.any()


def test_the_talks_typical_n01_weights_and_biases():
    lamina.seed(3)
    d = nn.Dense(400, 300, init="normal", bias_init="normal")
    assert np.std(d.weight.data) == pytest.approx(1, rel=0.02) and np.std(d.bias.data) == pytest.approx(1, rel=0.2)
    assert not nn.Conv2D(2, 3, 3).bias.data.any()


def test_uniform_follows_its_rng_and_dtype():
    a = lamina.init.uniform((50, 4), np.random.default_rng(7), dtype=np.float64, low=2.0, high=3.0)
    b = lamina.init.uniform((50, 4), np.random.default_rng(7), dtype=np.float64, low=2.0, high=3.0)
    assert a.dtype == np.float64 and a.shape == (50, 4)
    np.testing.assert_array_equal(a, b)  # the generator given, not the global one
    np.testing.assert_array_equal(a, np.random.default_rng(7).uniform(2.0, 3.0, size=(50, 4)))
    assert lamina.init.uniform((3,), np.random.default_rng(7)).dtype == np.float32
