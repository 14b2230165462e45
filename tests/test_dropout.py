"""dropout through opcheck: every implementation's mask and output bit-identical to the NumPy
twin's (every CPU path and thread count, every registered backend), the backward likewise and
by finite differences; inverted scaling, p = 0, statistics of the mask, bad inputs."""
import numpy as np
import pytest

import lamina
import opcheck
from lamina import ops, reference as ref

SHAPES = [(1,), (7,), (16,), (17,), (3, 5), (4, 6), (2, 3, 33), (0,), (300, 411)]

DROPOUT = opcheck.Op("dropout", close=opcheck.EXACT, y=0, backward="dropout_backward",
                     backward_args=lambda a, kw, out, gy: ((gy, out[1], kw["p"]), {}),
                     backward_close=opcheck.EXACT)


@pytest.mark.parametrize("target", opcheck.targets(DROPOUT))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9])
def test_matches_reference_bit_for_bit(target, rng, shape, p):
    opcheck.check(target, DROPOUT, (rng.standard_normal(shape).astype(np.float32),), dict(p=p, seed=1234))


def test_same_mask_for_any_thread_count_and_isa(rng):
    x = rng.standard_normal((513, 257)).astype(np.float32)
    before_t = lamina.get_num_threads()
    before_isa = lamina.backend_info()["isa"]
    masks = []
    try:
        for isa in lamina.backend_info()["isas_available"]:
            lamina._native._select_isa(isa)
            for nt in (1, 2, 3):
                lamina.set_num_threads(nt)
                masks.append(ops.dropout(x, 0.37, 2**63 + 5)[1])
    finally:
        lamina.set_num_threads(before_t)
        lamina._native._select_isa(before_isa)
    for m in masks[1:]:
        np.testing.assert_array_equal(m, masks[0])


def test_inverted_scaling_and_values(rng):
    x = rng.standard_normal(10_000).astype(np.float32)
    p = 0.25
    y, mask = ops.dropout(x, p, 7)
    assert set(np.unique(mask)) <= {0.0, 1.0}
    scale = np.float32(1 / (1 - p))
    np.testing.assert_array_equal(y[mask == 1], x[mask == 1] * scale)
    assert np.all(y[mask == 0] == 0)


def test_p_zero_is_identity(rng):
    x = rng.standard_normal((5, 9)).astype(np.float32)
    x[0, 0] = np.nan
    y, mask = ops.dropout(x, 0.0, 99)
    np.testing.assert_array_equal(y, x)
    assert np.all(mask == 1)


@pytest.mark.parametrize("p", [0.05, 0.5, 0.8])
def test_keep_fraction_and_seed_independence(p):
    x = np.ones(200_000, np.float32)
    n = x.size
    m1 = ops.dropout(x, p, 1)[1]
    m2 = ops.dropout(x, p, 2)[1]
    sigma = np.sqrt(p * (1 - p) / n)
    assert abs(m1.mean() - (1 - p)) < 5 * sigma
    assert abs(m2.mean() - (1 - p)) < 5 * sigma
    # masks of neighbouring seeds agree only as often as independent ones would
    agree = np.mean(m1 == m2)
    expect = p * p + (1 - p) * (1 - p)
    assert abs(agree - expect) < 5 * np.sqrt(expect * (1 - expect) / n)
    # and neighbouring elements are not correlated
    c = np.corrcoef(m1[:-1], m1[1:])[0, 1]
    assert abs(c) < 5 / np.sqrt(n)


def test_seed_types(rng):
    x = rng.standard_normal(100).astype(np.float32)
    want = ops.dropout(x, 0.5, 42)[1]
    np.testing.assert_array_equal(ops.dropout(x, 0.5, np.int64(42))[1], want)
    np.testing.assert_array_equal(ops.dropout(x, 0.5, np.uint8(42))[1], want)
    np.testing.assert_array_equal(ops.dropout(x, np.float32(0.5), 42)[1], want)
    # the extreme seeds give the reference's masks, and not one another's
    masks = []
    for seed in (2**64 - 1, 0):
        y, mask = ops.dropout(x, 0.5, seed)
        want_y, want_mask = ref.dropout(x, 0.5, seed)
        np.testing.assert_array_equal(mask, want_mask)
        np.testing.assert_allclose(y, want_y, rtol=1e-6)
        assert 20 < mask.sum() < 80
        masks.append(mask)
    assert not np.array_equal(masks[0], masks[1])


def test_bad_inputs():
    x = np.zeros((3, 4), np.float32)
    for bad in (1.0, -0.1, float("nan"), 1.5):
        with pytest.raises(ValueError, match=r"\bp\b"):
            ops.dropout(x, bad, 0)
        with pytest.raises(ValueError, match=r"\bp\b"):
            ops.dropout_backward(x, x, bad)
        with pytest.raises(ValueError, match=r"\bp\b"):
            ref.dropout(x, bad, 0)
    with pytest.raises(TypeError, match=r"\bp\b"):
        ops.dropout(x, "0.5", 0)
    for bad in (-1, 2**64):
        with pytest.raises(ValueError, match=r"\bseed\b"):
            ops.dropout(x, 0.5, bad)
    for bad in (1.5, True, None, "3"):
        with pytest.raises(TypeError, match=r"\bseed\b"):
            ops.dropout(x, 0.5, bad)
    with pytest.raises(TypeError, match=r"\bx\b"):
        ops.dropout(x.astype(np.float64), 0.5, 0)
    with pytest.raises(ValueError, match=r"\bx\b"):
        ops.dropout(np.zeros((3, 8), np.float32)[:, ::2], 0.5, 0)
    with pytest.raises(ValueError, match=r"\bmask\b"):
        ops.dropout_backward(x, np.zeros((4, 3), np.float32), 0.5)
    with pytest.raises(TypeError, match=r"\bmask\b"):
        ops.dropout_backward(x, np.zeros((3, 4), bool), 0.5)
    with pytest.raises(TypeError, match=r"\bgrad_y\b"):
        ops.dropout_backward(x.astype(np.float64), x, 0.5)
