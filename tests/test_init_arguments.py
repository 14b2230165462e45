"""lamina.init passes every argument through: the default range of uniform, and the generator,
dtype and nonlinearity of random_walk (N(0, omega^2 / fan_in))."""
import math

import numpy as np
import pytest

from lamina import init


def test_uniform_defaults_to_minus_one_one():
    w = init.uniform((20000,), rng=0)
    assert w.dtype == np.float32
    assert -1.0 <= w.min() < -0.99 and 0.99 < w.max() < 1.0
    assert abs(float(w.mean())) < 0.02


def test_random_walk_uses_the_generator_given():
    a = init.random_walk((40, 30), rng=np.random.default_rng(5))
    b = init.random_walk((40, 30), rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    omega = init.random_walk_gain(30)
    want = np.random.default_rng(5).normal(0.0, omega / math.sqrt(30), size=(40, 30)).astype(np.float32)
    np.testing.assert_allclose(a, want, rtol=1e-6)


def test_random_walk_keeps_the_dtype():
    assert init.random_walk((4, 3), rng=0, dtype=np.float64).dtype == np.float64
    assert init.random_walk((4, 3), rng=0).dtype == np.float32


@pytest.mark.parametrize("nonlinearity", ["relu", "tanh", "linear"])
def test_random_walk_scales_by_the_gain_of_its_nonlinearity(nonlinearity):
    w = init.random_walk((30, 7), rng=np.random.default_rng(1), dtype=np.float64, nonlinearity=nonlinearity)
    z = np.random.default_rng(1).normal(0.0, 1.0, size=(30, 7))
    np.testing.assert_allclose(w, z * init.random_walk_gain(7, nonlinearity) / math.sqrt(7), rtol=1e-12)


def test_random_walk_gain_defaults_to_relu():
    assert init.random_walk_gain(100) == init.random_walk_gain(100, "relu")
    assert init.random_walk_gain(100) == pytest.approx(math.sqrt(2) * math.exp(1.2 / 97.6))
    with pytest.raises(ValueError, match=r"\bnonlinearity\b.*'RELU'"):
        init.random_walk_gain(100, "RELU")
