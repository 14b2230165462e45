"""sgd_step through opcheck: every implementation against the reference over several steps for
every variant (every CPU path and thread count, every registered backend), the PyTorch
first-step convention, in-place semantics, bad inputs."""
import numpy as np
import pytest

import opcheck
from lamina import ops, reference as ref

SHAPES = [(1,), (15,), (16,), (33,), (3, 5), (2, 3, 17), (0,), (400, 301)]
VARIANTS = [  # momentum, weight_decay, nesterov
    (0.0, 0.0, False), (0.0, 0.01, False), (0.9, 0.0, False), (0.9, 0.05, False), (0.9, 0.0, True),
    (0.5, 0.01, True)]


# in place on param (0) and velocity (3); returns None
SGD_STEP = opcheck.Op("sgd_step", inplace=(0, 3), close=opcheck.allclose(rtol=1e-5, atol=1e-6))


@pytest.mark.parametrize("target", opcheck.targets(SGD_STEP))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("momentum,weight_decay,nesterov", VARIANTS)
def test_matches_reference(target, rng, shape, momentum, weight_decay, nesterov):
    p = rng.standard_normal(shape).astype(np.float32)
    v = np.zeros(shape, np.float32) if momentum else None
    steps = [(p, rng.standard_normal(shape).astype(np.float32), 0.1, v) for _ in range(3)]
    opcheck.check(target, SGD_STEP, steps, dict(momentum=momentum, weight_decay=weight_decay, nesterov=nesterov))


def test_first_step_velocity_equals_g(rng):
    p = rng.standard_normal(50).astype(np.float32)
    g = rng.standard_normal(50).astype(np.float32)
    p0 = p.copy()
    v = np.zeros_like(p)
    ops.sgd_step(p, g, 0.5, v, momentum=0.9, weight_decay=0.1)
    np.testing.assert_allclose(v, g + np.float32(0.1) * p0, rtol=1e-6)
    np.testing.assert_allclose(p, p0 - np.float32(0.5) * v, rtol=1e-6, atol=1e-7)


def test_plain_sgd_and_velocity_untouched_without_momentum(rng):
    p = rng.standard_normal(40).astype(np.float32)
    g = rng.standard_normal(40).astype(np.float32)
    want = p - np.float32(0.01) * g
    v = np.full(40, 7.0, np.float32)
    ops.sgd_step(p, g, 0.01, v)
    np.testing.assert_allclose(p, want, rtol=1e-6)
    assert np.all(v == 7.0)


def test_lr_zero_leaves_param(rng):
    p = rng.standard_normal(20).astype(np.float32)
    p0 = p.copy()
    ops.sgd_step(p, rng.standard_normal(20).astype(np.float32), 0.0)
    np.testing.assert_array_equal(p, p0)


def test_bad_inputs():
    p = np.zeros((3, 4), np.float32)
    g = np.zeros((3, 4), np.float32)
    v = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="grad"):
        ops.sgd_step(p, np.zeros((4, 3), np.float32), 0.1)
    with pytest.raises(ValueError, match="velocity"):
        ops.sgd_step(p, g, 0.1, momentum=0.9)
    with pytest.raises(ValueError, match="velocity"):
        ops.sgd_step(p, g, 0.1, np.zeros(12, np.float32), momentum=0.9)
    with pytest.raises(ValueError, match="nesterov"):
        ops.sgd_step(p, g, 0.1, v, nesterov=True)
    with pytest.raises(ValueError, match="nesterov"):
        ref.sgd_step(p, g, 0.1, v, nesterov=True)
    for name in ("lr", "momentum", "weight_decay"):
        kw = dict(lr=0.1, momentum=0.5, weight_decay=0.0)
        kw[name] = -0.1
        with pytest.raises(ValueError, match=name):
            ops.sgd_step(p, g, velocity=v, **kw)
        kw[name] = float("nan")
        with pytest.raises(ValueError, match=name):
            ops.sgd_step(p, g, velocity=v, **kw)
    with pytest.raises(TypeError, match="lr"):
        ops.sgd_step(p, g, "0.1")
    ro = p.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="param"):
        ops.sgd_step(ro, g, 0.1)
    vro = v.copy()
    vro.flags.writeable = False
    with pytest.raises(ValueError, match="velocity"):
        ops.sgd_step(p, g, 0.1, vro, momentum=0.9)
    with pytest.raises(ValueError, match="param"):
        ops.sgd_step(np.zeros((3, 8), np.float32)[:, ::2], g, 0.1)
    with pytest.raises(ValueError, match="velocity"):
        ops.sgd_step(p, g, 0.1, np.zeros((3, 8), np.float32)[:, ::2], momentum=0.9)
    with pytest.raises(TypeError, match="grad"):
        ops.sgd_step(p, g.astype(np.float64), 0.1)
    with pytest.raises(TypeError, match="velocity"):
        ops.sgd_step(p, g, 0.1, v.astype(np.float64), momentum=0.9)
    with pytest.raises(ValueError, match="overlaps"):
        ops.sgd_step(p, p, 0.1)
    with pytest.raises(ValueError, match="overlaps"):
        ops.sgd_step(p, g, 0.1, p, momentum=0.9)
    with pytest.raises(ValueError, match="overlaps"):
        ops.sgd_step(p, g, 0.1, g, momentum=0.9)
